// V1-style tuning analyses on grating tuning curves (tdann.md §7.1, §7.2):
// circular variance, preferred orientation (von Mises fit, OFFICIAL, or
// argmax), SF/colour preference, the "% selective" figure, and the
// distance-vs-preference-difference smoothness curves.
//
// All functions are pure: tensors in, tensors/values out, float64 results.
#ifndef TOPOLAB_WORKER_SCIENCE_ANALYSIS_TUNING_H_
#define TOPOLAB_WORKER_SCIENCE_ANALYSIS_TUNING_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace topolab::science {

// CV = 1 - |sum_k R_k e^{2i theta_k}| / sum_k R_k with theta_k = k*pi/K for
// curves [U, K] (K orientations evenly covering 180 deg). Units whose
// summed response is <= 0 (silent) get NaN. Returns float64 [U].
at::Tensor CircularVariance(const at::Tensor& curves);

// Preferred orientation (deg in [0, 180)) = orientation of the largest value
// of each curve [U, K] (first one on ties).
at::Tensor PreferredOrientationArgmax(const at::Tensor& curves);

struct VonMisesOptions {
  int samples = 50;       // interpolated points on [0, 180]
  int iterations = 60;    // Levenberg-Marquardt steps (batched over units)
};

// OFFICIAL preferred orientation (§7.1): append the 0-deg value at 180,
// linearly interpolate to `samples` points on [0, 180], least-squares fit
// a*exp(kappa*cos(x - x0))/(2*pi*I0(kappa)) over x = linspace(-pi, pi,
// samples) (fitted as A*exp(kappa*(cos(x - x0) - 1)), the same family,
// for numerical stability), and return the interpolated angle
// linspace(0, 180, samples)[argmax of the fitted curve]. Results are
// therefore multiples of 180/(samples-1) deg; 180 is reported as 0.
// Flat (constant) curves return the argmax of the flat fit, i.e. 0.
// curves [U, K]; returns float64 [U] deg.
at::Tensor PreferredOrientationVonMises(const at::Tensor& curves,
                                        const VonMisesOptions& options = {});

// Index of the largest value per row (argmax over the last dim), int64 [U].
at::Tensor PreferredIndex(const at::Tensor& curves);

struct SelectivityOptions {
  double cv_threshold = 0.6;    // selective: CV < threshold
  double min_mean = 1.0;        // responsive: mean rescaled response > min_mean
  // Median peak response of the Ringach et al. (2002) macaque V1 sample the
  // rescaling targets (spikes/s). Configurable; the OFFICIAL constant was not
  // available to us (see README).
  double reference_median_peak = 12.0;
};

struct SelectivityResult {
  double selective_fraction = 0;  // selective / responsive (0 if none responsive)
  int64_t responsive = 0;
  int64_t selective = 0;
  double scale = 1;               // factor applied after the shift
};

// §7.1 "% selective": shift curves [U, K] to >= 0 (subtract the global
// minimum if negative), scale so the median per-unit peak equals
// `reference_median_peak`, keep units whose mean rescaled response >
// min_mean, and count those with CV (from `cv` [U]) < cv_threshold.
SelectivityResult SelectiveFraction(const at::Tensor& curves, const at::Tensor& cv,
                                    const SelectivityOptions& options = {});

// Peak-to-peak (max - min) of each curve [U, K] -> float64 [U].
at::Tensor PeakToPeak(const at::Tensor& curves);

// Mask of units whose value is strictly above the given percentile (0..100,
// numpy's linear interpolation) of `values` [U]. NaNs never pass.
at::Tensor AbovePercentile(const at::Tensor& values, double percentile);

// ---------------------------------------------------------------------------
// Smoothness: mean |difference| of a per-unit value as a function of
// cortical distance (§7.2 for preferences, §7.6 for t-values).
// ---------------------------------------------------------------------------

struct SmoothnessOptions {
  double max_distance_mm = 3.5 * 4.0 / 3.0 * 1.4142135623730951 / 2.0;  // ~3.30
  int num_bins = 9;             // bin edges = linspace(0, max_distance, num_bins + 1)
  int repetitions = 20;
  int64_t sample_size = 1000;   // units drawn (without replacement) per repetition
  // > 0: values are circular with this period and |difference| is wrapped
  // into [0, period/2] (orientation: 180). 0: plain |difference|.
  double period = 0;
  uint64_t seed = 424;
};

struct SmoothnessResult {
  at::Tensor bin_edges;      // float64 [num_bins + 1]
  at::Tensor midpoints;      // float64 [num_bins]
  at::Tensor curves;         // float64 [repetitions, num_bins] (NaN = empty bin)
  at::Tensor chance_curves;  // same with the pair distances shuffled
  double score = 0;          // mean over repetitions of CurveSmoothness(curve)
  double chance_score = 0;
};

// Draws `repetitions` samples of `sample_size` units among those with
// eligible[u] (all if undefined), and for each sample takes all pairs with
// distance <= max_distance: curve[b] = mean |delta value| of pairs in bin b.
// `post_sample_mask` [U] bool (optional) drops sampled units after the draw
// (§7.6 samples 500 units, then keeps those with mean response > 0.5).
// values [U], positions [U, 2] mm. REQUIRES: at least 2 eligible units.
SmoothnessResult DistanceSmoothness(const at::Tensor& values, const at::Tensor& positions,
                                    const at::Tensor& eligible,
                                    const SmoothnessOptions& options,
                                    const at::Tensor& post_sample_mask = at::Tensor());

// (max(curve) - curve[0]) / max(curve), on the curve truncated at its first
// NaN bin. A curve whose maximum is 0 (every pair identical) scores 1; an
// empty curve (first bin NaN) scores NaN.
double CurveSmoothness(const std::vector<double>& curve);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_ANALYSIS_TUNING_H_
