// Ridge / LOO / bootstrap / PCA / logistic probe. float64 throughout because
// LOO denominators (1 - H_ii) and tiny alphas are precision-sensitive.
#include "worker/science/families/encoding.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/lbfgs.h>

#include "absl/strings/str_cat.h"

namespace topolab::science {

std::vector<double> DefaultRidgeAlphas() {
  std::vector<double> a;
  for (int e = -10; e <= 9; ++e) a.push_back(std::pow(10.0, e));
  return a;
}

at::Tensor PearsonPerColumn(const at::Tensor& a_in, const at::Tensor& b_in) {
  at::Tensor a = a_in.to(at::kDouble), b = b_in.to(at::kDouble);
  a = a - a.mean({0}, true);
  b = b - b.mean({0}, true);
  at::Tensor num = (a * b).sum(0);
  at::Tensor den = at::sqrt((a * a).sum(0) * (b * b).sum(0));
  at::Tensor r = num / den;
  return at::where(den > 0, r, at::full_like(r, NAN));
}

RidgeBasis MakeRidgeBasis(const at::Tensor& x_in, const at::Tensor& y_in) {
  RidgeBasis b;
  at::Tensor x = x_in.to(at::kDouble), y = y_in.to(at::kDouble);
  if (y.dim() == 1) y = y.unsqueeze(1);
  b.x_mean = x.mean(0);
  b.y_mean = y.mean(0);
  b.xc = x - b.x_mean;
  b.yc = y - b.y_mean;
  const int64_t n = x.size(0), p = x.size(1);
  if (p >= n) {
    // Dual: eigenvectors of the n x n Gram matrix are the left singular vectors.
    auto eig = at::linalg_eigh(at::matmul(b.xc, b.xc.t()));
    at::Tensor d = at::clamp_min(std::get<0>(eig), 0.0);
    // Drop the numerical null space (it holds at least the constant vector,
    // which the unpenalised intercept already covers).
    const double tol = d.max().item<double>() * 1e-12 * std::max(n, p);
    at::Tensor keep = at::nonzero(d > tol).squeeze(1);
    b.d = d.index_select(0, keep);
    b.u = std::get<1>(eig).index_select(1, keep);
  } else {
    auto eig = at::linalg_eigh(at::matmul(b.xc.t(), b.xc));
    at::Tensor d = at::clamp_min(std::get<0>(eig), 0.0);
    at::Tensor v = std::get<1>(eig);
    const double tol = d.max().item<double>() * 1e-12 * std::max(n, p);
    at::Tensor keep = at::nonzero(d > tol).squeeze(1);
    d = d.index_select(0, keep);
    v = v.index_select(1, keep);
    b.u = at::matmul(b.xc, v) / at::sqrt(d);
    b.d = d;
  }
  b.uty = at::matmul(b.u.t(), b.yc);
  return b;
}

at::Tensor RidgeLooPredictions(const RidgeBasis& b, double alpha) {
  const int64_t n = b.xc.size(0);
  at::Tensor w = b.d / (b.d + alpha);                        // [r] shrinkage
  at::Tensor h = 1.0 / n + at::matmul(b.u * b.u, w);         // diag of the hat matrix
  at::Tensor fit = at::matmul(b.u, b.uty * w.unsqueeze(1));  // Xc beta, [n, t]
  at::Tensor resid = (b.yc - fit) / (1.0 - h).unsqueeze(1);  // LOO residuals
  return b.yc + b.y_mean - resid;
}

RidgeCvResult RidgeLooSelect(const RidgeBasis& b, const std::vector<double>& alphas,
                             const std::string& score) {
  RidgeCvResult r;
  std::vector<double> scores;
  at::Tensor y = b.yc + b.y_mean;
  double best = -INFINITY;
  for (size_t i = 0; i < alphas.size(); ++i) {
    at::Tensor pred = RidgeLooPredictions(b, alphas[i]);
    double s;
    if (score == "mse") {
      s = -(pred - y).pow(2).mean().item<double>();
    } else {
      s = at::nanmean(PearsonPerColumn(pred, y)).item<double>();
    }
    if (std::isnan(s)) s = -INFINITY;
    scores.push_back(s);
    if (s > best) {
      best = s;
      r.alpha_index = static_cast<int>(i);
      r.alpha = alphas[i];
      r.loo_predictions = pred;
    }
  }
  if (!r.loo_predictions.defined()) {  // every score was NaN
    r.alpha_index = 0;
    r.alpha = alphas[0];
    r.loo_predictions = RidgeLooPredictions(b, alphas[0]);
  }
  r.alpha_scores = at::tensor(scores, at::kDouble);
  return r;
}

RidgeModel FitRidge(const RidgeBasis& b, double alpha) {
  RidgeModel m;
  // beta = Xc^T U diag(1/(d+alpha)) U^T Yc  (= V diag(s/(s^2+alpha)) U^T Yc)
  m.coef = at::matmul(b.xc.t(), at::matmul(b.u, b.uty / (b.d + alpha).unsqueeze(1)));
  m.intercept = b.y_mean - at::matmul(b.x_mean, m.coef);
  return m;
}

at::Tensor RidgeModel::Predict(const at::Tensor& x) const {
  return at::matmul(x.to(at::kDouble), coef) + intercept;
}

BootstrapResult BootstrapScore(const at::Tensor& pred_in, const at::Tensor& obs_in, int64_t n_boot,
                               uint64_t seed, const std::string& axis) {
  at::Tensor pred = pred_in.to(at::kDouble), obs = obs_in.to(at::kDouble);
  if (axis == "stimuli") {  // rows become columns: r across units per stimulus
    pred = pred.t().contiguous();
    obs = obs.t().contiguous();
  }
  const bool resample_rows = axis != "stimuli";
  const int64_t n = pred_in.size(0);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<double> samples;
  samples.reserve(n_boot);
  for (int64_t i = 0; i < n_boot; ++i) {
    at::Tensor idx = at::randint(0, n, {n}, gen, at::TensorOptions().dtype(at::kLong));
    idx = idx.to(pred.device());
    at::Tensor r = resample_rows ? PearsonPerColumn(pred.index_select(0, idx), obs.index_select(0, idx))
                                 : PearsonPerColumn(pred.index_select(1, idx), obs.index_select(1, idx));
    samples.push_back(at::nanmean(r).item<double>());
  }
  BootstrapResult out;
  out.samples = at::tensor(samples, at::kDouble);
  if (n_boot > 0) {
    out.mean = at::nanmean(out.samples).item<double>();
    at::Tensor finite = out.samples.index_select(0, at::nonzero(at::isfinite(out.samples)).squeeze(1));
    if (finite.numel() > 0) {
      out.low = at::quantile(finite, 0.025).item<double>();
      out.high = at::quantile(finite, 0.975).item<double>();
    } else {
      out.low = out.high = NAN;
    }
  }
  return out;
}

absl::StatusOr<EncodingResult> EncodingScore(const at::Tensor& x_train, const at::Tensor& y_train_in,
                                             const at::Tensor& x_test, const at::Tensor& y_test_in,
                                             const EncodingOptions& options) {
  at::Tensor y_train = y_train_in.dim() == 1 ? y_train_in.unsqueeze(1) : y_train_in;
  at::Tensor y_test = y_test_in.dim() == 1 ? y_test_in.unsqueeze(1) : y_test_in;
  if (x_train.dim() != 2 || x_test.dim() != 2 || y_train.dim() != 2 || y_test.dim() != 2) {
    return absl::InvalidArgumentError("encoding: features and responses must be 2-D (stimuli x units)");
  }
  if (x_train.size(0) != y_train.size(0) || x_test.size(0) != y_test.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "encoding: stimulus counts disagree: features ", x_train.size(0), "/", x_test.size(0),
        " rows vs responses ", y_train.size(0), "/", y_test.size(0), " rows (train/test)"));
  }
  if (x_train.size(1) != x_test.size(1) || y_train.size(1) != y_test.size(1)) {
    return absl::InvalidArgumentError("encoding: train and test column counts disagree");
  }
  if (x_train.size(0) < 3 || x_test.size(0) < 3) {
    return absl::InvalidArgumentError("encoding: need at least 3 train and 3 test stimuli");
  }
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&x_train, &y_train, &x_test, &y_test}) {
    if (!at::isfinite(*t).all().item<bool>()) {
      return absl::InvalidArgumentError("encoding: features or responses contain NaN/Inf");
    }
  }
  std::vector<double> alphas = options.alphas.empty() ? DefaultRidgeAlphas() : options.alphas;
  RidgeBasis basis = MakeRidgeBasis(x_train, y_train);
  RidgeCvResult cv = RidgeLooSelect(basis, alphas, options.alpha_score);
  RidgeModel model = FitRidge(basis, cv.alpha);
  EncodingResult r;
  r.alpha = cv.alpha;
  r.alpha_scores = cv.alpha_scores;
  r.test_predictions = model.Predict(x_test);
  r.unit_r = PearsonPerColumn(r.test_predictions, y_test);
  r.mean_r = at::nanmean(r.unit_r).item<double>();
  r.bootstrap = BootstrapScore(r.test_predictions, y_test, options.n_boot, options.seed,
                               options.bootstrap_axis);
  return r;
}

at::Tensor PcaResult::Project(const at::Tensor& x, int64_t n) const {
  n = std::min<int64_t>(n, components.size(0));
  return at::matmul(x.to(at::kDouble) - mean, components.narrow(0, 0, n).t());
}

PcaResult FitPca(const at::Tensor& x_in, int64_t max_components) {
  at::Tensor x = x_in.to(at::kDouble);
  const int64_t n = x.size(0), p = x.size(1);
  PcaResult r;
  r.mean = x.mean(0);
  at::Tensor xc = x - r.mean;
  at::Tensor evals, comps;  // descending
  if (p <= n) {
    auto eig = at::linalg_eigh(at::matmul(xc.t(), xc));
    evals = std::get<0>(eig).flip({0}).clamp_min(0.0);
    comps = std::get<1>(eig).flip({1}).t();  // [p, p] rows
  } else {
    auto eig = at::linalg_eigh(at::matmul(xc, xc.t()));
    evals = std::get<0>(eig).flip({0}).clamp_min(0.0);
    at::Tensor u = std::get<1>(eig).flip({1});
    const double tol = evals.max().item<double>() * 1e-12 * n;
    const int64_t rank = (evals > tol).sum().item<int64_t>();
    evals = evals.narrow(0, 0, rank);
    comps = (at::matmul(xc.t(), u.narrow(1, 0, rank)) / at::sqrt(evals)).t();
  }
  at::Tensor var = evals / std::max<int64_t>(n - 1, 1);
  const double total = var.sum().item<double>();
  const double sq = var.pow(2).sum().item<double>();
  r.effective_dimensionality = sq > 0 ? total * total / sq : 0.0;
  int64_t k = std::min<int64_t>({var.size(0), n - 1 > 0 ? n - 1 : 1, p});
  if (max_components > 0) k = std::min(k, max_components);
  r.components = comps.narrow(0, 0, k).contiguous();
  r.explained_variance = var.narrow(0, 0, k).contiguous();
  r.explained_variance_ratio = total > 0 ? r.explained_variance / total : at::zeros_like(r.explained_variance);
  return r;
}

absl::StatusOr<ProbeResult> LinearProbe(const at::Tensor& x_train_in, const at::Tensor& y_train,
                                        const at::Tensor& x_test_in, const at::Tensor& y_test,
                                        int64_t num_classes, const LogisticProbeOptions& o) {
  if (x_train_in.dim() != 2 || x_test_in.dim() != 2 || x_train_in.size(1) != x_test_in.size(1)) {
    return absl::InvalidArgumentError("probe: features must be [n, p] with the same p for train and test");
  }
  if (y_train.dim() != 1 || y_train.size(0) != x_train_in.size(0) || y_test.dim() != 1 ||
      y_test.size(0) != x_test_in.size(0)) {
    return absl::InvalidArgumentError("probe: labels must be [n] matching the feature rows");
  }
  if (num_classes < 2 || y_train.numel() == 0 || y_train.min().item<int64_t>() < 0 ||
      y_train.max().item<int64_t>() >= num_classes ||
      (y_test.numel() > 0 && (y_test.min().item<int64_t>() < 0 ||
                              y_test.max().item<int64_t>() >= num_classes))) {
    return absl::InvalidArgumentError(
        absl::StrCat("probe: labels must lie in [0, ", num_classes, ") with num_classes >= 2"));
  }
  at::Tensor x_train = x_train_in.to(at::kDouble), x_test = x_test_in.to(at::kDouble);
  if (o.standardize) {
    at::Tensor mu = x_train.mean(0);
    at::Tensor sd = x_train.std(0, /*unbiased=*/false).clamp_min(1e-12);
    x_train = (x_train - mu) / sd;
    x_test = (x_test - mu) / sd;
  }
  const int64_t p = x_train.size(1);
  at::Tensor w = at::zeros({p, num_classes}, x_train.options()).requires_grad_(true);
  at::Tensor b = at::zeros({num_classes}, x_train.options()).requires_grad_(true);
  at::Tensor yt = y_train.to(x_train.device(), at::kLong);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(o.max_iter)
                                      .tolerance_grad(1e-9)
                                      .tolerance_change(1e-12)
                                      .history_size(20)
                                      .line_search_fn("strong_wolfe"));
  auto closure = [&]() {
    opt.zero_grad();
    at::Tensor logits = at::matmul(x_train, w) + b;
    at::Tensor loss = at::nll_loss(at::log_softmax(logits, 1), yt) + 0.5 * o.l2 * w.pow(2).sum();
    loss.backward();
    return loss;
  };
  opt.step(closure);
  ProbeResult r;
  {
    at::NoGradGuard ng;
    at::Tensor logits = at::matmul(x_train, w) + b;
    r.train_loss = (at::nll_loss(at::log_softmax(logits, 1), yt) + 0.5 * o.l2 * w.pow(2).sum()).item<double>();
    r.train_accuracy = (logits.argmax(1) == yt).to(at::kDouble).mean().item<double>();
    at::Tensor ys = y_test.to(x_test.device(), at::kLong);
    at::Tensor pred = (at::matmul(x_test, w) + b).argmax(1);
    r.test_accuracy = ys.numel() ? (pred == ys).to(at::kDouble).mean().item<double>() : NAN;
    r.confusion = at::bincount(ys * num_classes + pred, {}, num_classes * num_classes)
                      .view({num_classes, num_classes}).cpu();
    r.weight = w.detach();
    r.bias = b.detach();
  }
  return r;
}

}  // namespace topolab::science
