// Linear read-outs for the expansion model (models.md §2.2-2.3), usable with
// any feature matrix: ridge regression whose penalty is chosen by exact,
// closed-form leave-one-out (LOO) cross-validation, the encoding score
// (Pearson r per neural unit on held-out stimuli, with a seeded bootstrap
// CI), PCA (variance spectrum, effective dimensionality, projection) and a
// multinomial logistic-regression linear probe.
//
// All computations run in float64 on the inputs' device; inputs may be any
// floating dtype. Pure functions, thread-compatible.
//
// Documented choices:
//  * Ridge fits an unpenalised intercept and does not scale X (sklearn's
//    RidgeCV(fit_intercept=True)). LOO is exact for that model: with
//    centred Xc = U S V^T, the hat matrix is H = 11^T/n + U diag(s^2/(s^2+a))
//    U^T, and the LOO residual of sample i is e_i / (1 - H_ii). One
//    eigendecomposition (of Xc Xc^T when p >= n, of Xc^T Xc otherwise)
//    serves every alpha; no model is refit per sample.
//  * Alpha is chosen by the mean over targets of Pearson r between LOO
//    predictions and targets (`alpha_score: pearson`, the reference's choice);
//    `mse` (sklearn's default) is the alternative.
//  * The bootstrap scores unit-wise r (resampling stimuli, r per unit, mean
//    over units), which is what the reference's docstrings describe;
//    `bootstrap_axis: stimuli` gives the per-stimulus pattern correlation the
//    reference code actually computes (centring across units).
#ifndef TOPOLAB_WORKER_SCIENCE_FAMILIES_ENCODING_H_
#define TOPOLAB_WORKER_SCIENCE_FAMILIES_ENCODING_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"

namespace topolab::science {

// 10^-10 ... 10^9: the reference's 20 candidate penalties.
std::vector<double> DefaultRidgeAlphas();

// Pearson r of every column of a with the same column of b ([n, t] each),
// float64 [t]; NaN where a column has zero variance.
at::Tensor PearsonPerColumn(const at::Tensor& a, const at::Tensor& b);

// Spectral factors of centred training features, reused for every alpha.
struct RidgeBasis {
  at::Tensor x_mean;  // [p]
  at::Tensor y_mean;  // [t]
  at::Tensor u;       // [n, r] left singular vectors of Xc
  at::Tensor d;       // [r] squared singular values
  at::Tensor uty;     // [r, t] U^T Yc
  at::Tensor xc;      // [n, p] centred X (needed for coefficients)
  at::Tensor yc;      // [n, t]
};
// REQUIRES: x [n, p], y [n, t], n >= 3.
RidgeBasis MakeRidgeBasis(const at::Tensor& x, const at::Tensor& y);

// Exact LOO predictions [n, t] of ridge(alpha) with intercept.
at::Tensor RidgeLooPredictions(const RidgeBasis& basis, double alpha);

struct RidgeCvResult {
  double alpha = 0;
  int alpha_index = 0;
  at::Tensor alpha_scores;     // [n_alphas]: mean LOO Pearson r (or -MSE)
  at::Tensor loo_predictions;  // [n, t] at the chosen alpha
};
// Chooses alpha among `alphas` by LOO. score: "pearson" | "mse".
// Ties go to the first (smallest) alpha.
RidgeCvResult RidgeLooSelect(const RidgeBasis& basis, const std::vector<double>& alphas,
                             const std::string& score = "pearson");

struct RidgeModel {
  at::Tensor coef;       // [p, t]
  at::Tensor intercept;  // [t]
  at::Tensor Predict(const at::Tensor& x) const;  // [m, t] float64
};
RidgeModel FitRidge(const RidgeBasis& basis, double alpha);

struct BootstrapResult {
  double mean = 0;   // mean of the bootstrap distribution
  double low = 0;    // 2.5th percentile
  double high = 0;   // 97.5th percentile
  at::Tensor samples;  // [n_boot] float64
};
// Resamples the rows (stimuli) of pred/obs [n, t] with replacement `n_boot`
// times from a generator seeded with `seed` (the same indices for every
// model scored with the same seed and n). axis "units": per resample, r per
// unit (column), then the mean over units; "stimuli": r per row across
// units, mean over rows. NaNs (constant columns) are skipped in the means.
// Percentiles interpolate linearly (numpy's default).
BootstrapResult BootstrapScore(const at::Tensor& pred, const at::Tensor& obs, int64_t n_boot,
                               uint64_t seed, const std::string& axis = "units");

struct EncodingOptions {
  std::vector<double> alphas;           // empty = DefaultRidgeAlphas()
  std::string alpha_score = "pearson";  // | "mse"
  int64_t n_boot = 1000;
  uint64_t seed = 0;
  std::string bootstrap_axis = "units";  // | "stimuli"
};
struct EncodingResult {
  double alpha = 0;
  at::Tensor alpha_scores;  // [n_alphas]
  at::Tensor unit_r;        // [t] test Pearson r per unit
  double mean_r = 0;        // nanmean of unit_r
  BootstrapResult bootstrap;
  at::Tensor test_predictions;  // [m, t]
};
// Ridge encoding score: LOO alpha on (x_train, y_train), refit, predict
// x_test, Pearson r per unit against y_test, bootstrap CI. Returns
// InvalidArgument if shapes disagree (rows of x/y, columns of train/test),
// fewer than 3 training or test rows, or non-finite values.
absl::StatusOr<EncodingResult> EncodingScore(const at::Tensor& x_train, const at::Tensor& y_train,
                                             const at::Tensor& x_test, const at::Tensor& y_test,
                                             const EncodingOptions& options);

struct PcaResult {
  at::Tensor mean;                      // [p]
  at::Tensor components;                // [k, p], orthonormal rows, by decreasing variance
  at::Tensor explained_variance;        // [k] (divisor n - 1)
  at::Tensor explained_variance_ratio;  // [k] of the total variance (all components)
  double effective_dimensionality = 0;  // (sum l)^2 / sum l^2 over all components
  // Scores on the first n components: (x - mean) @ components[:n]^T.
  at::Tensor Project(const at::Tensor& x, int64_t n) const;
};
// PCA of x [n, p] keeping up to `max_components` (<= 0: all = min(n-1, p)).
// REQUIRES: n >= 2.
PcaResult FitPca(const at::Tensor& x, int64_t max_components = 0);

struct LogisticProbeOptions {
  double l2 = 1e-4;        // penalty (l2/2)*||W||^2 added to the mean CE
  int64_t max_iter = 200;  // LBFGS iterations
  bool standardize = true; // z-score features with the training mean/std
};
struct ProbeResult {
  double train_accuracy = 0;
  double test_accuracy = 0;
  double train_loss = 0;
  at::Tensor weight;     // [p, C] (on standardised features)
  at::Tensor bias;       // [C]
  at::Tensor confusion;  // [C, C] int64, rows = true class, cols = predicted (test)
};
// Multinomial logistic regression fitted with LBFGS (strong-Wolfe line
// search) on (x_train, y_train), evaluated on (x_test, y_test). Labels are
// int64 in [0, num_classes). Returns InvalidArgument on shape or label errors.
absl::StatusOr<ProbeResult> LinearProbe(const at::Tensor& x_train, const at::Tensor& y_train,
                                        const at::Tensor& x_test, const at::Tensor& y_test,
                                        int64_t num_classes, const LogisticProbeOptions& options);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_FAMILIES_ENCODING_H_
