// Streaming accumulators and the V1 tuning analyses (accumulators.h,
// tuning.h). One translation unit on purpose: ATen headers are expensive.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

#include "worker/science/analysis/accumulators.h"
#include "worker/science/analysis/tuning.h"
#include "worker/science/stimuli/stimuli.h"

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

at::Tensor AsDouble2d(const at::Tensor& t, const char* what) {
  if (!t.defined() || t.dim() < 1) throw std::invalid_argument(std::string(what) + ": undefined");
  at::Tensor x = t.to(at::kCPU).to(at::kDouble);
  if (x.dim() == 1) x = x.unsqueeze(0);
  return x.reshape({x.size(0), -1}).contiguous();
}

}  // namespace

// --- ConditionAccumulator ----------------------------------------------------

ConditionAccumulator::ConditionAccumulator(int64_t num_conditions, int64_t num_units,
                                           bool second_moment)
    : num_conditions_(num_conditions), num_units_(num_units) {
  if (num_conditions < 1 || num_units < 1) {
    throw std::invalid_argument("ConditionAccumulator: need >= 1 condition and unit");
  }
  counts_ = at::zeros({num_conditions}, at::kDouble);
  sums_ = at::zeros({num_conditions, num_units}, at::kDouble);
  if (second_moment) sq_sums_ = at::zeros({num_conditions, num_units}, at::kDouble);
}

void ConditionAccumulator::Add(const at::Tensor& responses, const at::Tensor& conditions) {
  at::Tensor r = responses.to(at::kCPU).to(at::kDouble);
  r = r.reshape({r.size(0), -1});
  at::Tensor c = conditions.to(at::kCPU).to(at::kLong).reshape({-1});
  if (r.size(1) != num_units_ || r.size(0) != c.size(0)) {
    throw std::invalid_argument("ConditionAccumulator::Add: responses [" +
                                std::to_string(r.size(0)) + ", " + std::to_string(r.size(1)) +
                                "] do not match " + std::to_string(c.size(0)) +
                                " conditions x " + std::to_string(num_units_) + " units");
  }
  if (c.numel() == 0) return;
  if (c.min().item<int64_t>() < 0 || c.max().item<int64_t>() >= num_conditions_) {
    throw std::invalid_argument("ConditionAccumulator::Add: condition out of range [0, " +
                                std::to_string(num_conditions_) + ")");
  }
  sums_.index_add_(0, c, r);
  counts_.index_add_(0, c, at::ones({c.size(0)}, at::kDouble));
  if (sq_sums_.defined()) sq_sums_.index_add_(0, c, r * r);
}

at::Tensor ConditionAccumulator::Means() const {
  at::Tensor n = counts_.unsqueeze(1);
  return at::where(n > 0, sums_ / n.clamp_min(1), at::full_like(sums_, kNaN));
}

at::Tensor ConditionAccumulator::GrandMean() const {
  double n = counts_.sum().item<double>();
  if (n <= 0) return at::full({num_units_}, kNaN, at::kDouble);
  return sums_.sum(0) / n;
}

void ConditionAccumulator::PooledMoments(const std::vector<int64_t>& conditions, at::Tensor* mean,
                                         at::Tensor* variance) const {
  if (!sq_sums_.defined()) {
    throw std::logic_error("PooledMoments needs an accumulator built with second_moment");
  }
  at::Tensor idx = at::tensor(conditions, at::kLong);
  double n = counts_.index_select(0, idx).sum().item<double>();
  if (n <= 0) {
    *mean = at::full({num_units_}, kNaN, at::kDouble);
    *variance = at::full({num_units_}, kNaN, at::kDouble);
    return;
  }
  at::Tensor m = sums_.index_select(0, idx).sum(0) / n;
  at::Tensor ex2 = sq_sums_.index_select(0, idx).sum(0) / n;
  *mean = m;
  // E[x^2] - m^2 can dip below 0 by round-off for constant units.
  *variance = (ex2 - m * m).clamp_min(0);
}

// --- GratingAccumulator ------------------------------------------------------

GratingAccumulator::GratingAccumulator(int64_t num_units)
    : orientation_(kNumOrientations, num_units),
      frequency_(kNumSpatialFrequencies, num_units),
      colour_(kNumColours, num_units),
      orientation_phase_(kNumOrientations * kNumPhases, num_units) {}

void GratingAccumulator::Add(const at::Tensor& responses, const at::Tensor& rows) {
  static const at::Tensor kOri = GratingFactorLabels("orientation");
  static const at::Tensor kSf = GratingFactorLabels("frequency");
  static const at::Tensor kCol = GratingFactorLabels("colour");
  static const at::Tensor kOriPh = GratingFactorLabels("orientation_phase");
  at::Tensor r = rows.to(at::kCPU).to(at::kLong).reshape({-1});
  if (r.numel() > 0 && (r.min().item<int64_t>() < 0 || r.max().item<int64_t>() >= kNumGratings)) {
    throw std::invalid_argument("GratingAccumulator::Add: grating row out of range [0, 640)");
  }
  at::Tensor resp = responses.to(at::kCPU).to(at::kDouble);
  resp = resp.reshape({resp.size(0), -1});
  orientation_.Add(resp, kOri.index_select(0, r));
  frequency_.Add(resp, kSf.index_select(0, r));
  colour_.Add(resp, kCol.index_select(0, r));
  orientation_phase_.Add(resp, kOriPh.index_select(0, r));
}

void GratingAccumulator::AddRange(const at::Tensor& responses, int64_t start) {
  Add(responses, at::arange(start, start + responses.size(0), at::kLong));
}

GratingTuning GratingAccumulator::Result() const {
  GratingTuning t;
  t.orientation = orientation_.Means().t().contiguous();
  t.frequency = frequency_.Means().t().contiguous();
  t.colour = colour_.Means().t().contiguous();
  t.orientation_phase =
      orientation_phase_.Means().t().reshape({-1, kNumOrientations, kNumPhases}).contiguous();
  t.mean = orientation_.GrandMean();
  return t;
}

// --- Tuning ------------------------------------------------------------------

at::Tensor CircularVariance(const at::Tensor& curves) {
  at::Tensor r = AsDouble2d(curves, "curves");
  const int64_t k = r.size(1);
  at::Tensor theta = at::arange(k, at::kDouble) * (2.0 * kPi / k);  // 2*theta_k
  at::Tensor re = (r * at::cos(theta)).sum(1);
  at::Tensor im = (r * at::sin(theta)).sum(1);
  at::Tensor total = r.sum(1);
  at::Tensor cv = 1.0 - at::sqrt(re * re + im * im) / total;
  return at::where(total > 0, cv, at::full_like(cv, kNaN));
}

at::Tensor PreferredIndex(const at::Tensor& curves) {
  return AsDouble2d(curves, "curves").argmax(1);
}

at::Tensor PreferredOrientationArgmax(const at::Tensor& curves) {
  at::Tensor r = AsDouble2d(curves, "curves");
  return r.argmax(1).to(at::kDouble) * (180.0 / r.size(1));
}

at::Tensor PreferredOrientationVonMises(const at::Tensor& curves, const VonMisesOptions& options) {
  at::Tensor r = AsDouble2d(curves, "curves");
  // Fit in chunks of units so the [units, samples, 3] Jacobians stay small
  // (a 224-px layer2.0 has 100k units).
  constexpr int64_t kChunk = 8192;
  if (r.size(0) > kChunk) {
    std::vector<at::Tensor> parts;
    for (int64_t s0 = 0; s0 < r.size(0); s0 += kChunk) {
      parts.push_back(
          PreferredOrientationVonMises(r.narrow(0, s0, std::min(kChunk, r.size(0) - s0)), options));
    }
    return at::cat(parts);
  }
  const int64_t u = r.size(0), k = r.size(1), s = options.samples;
  // Linear interpolation of the closed curve (k+1 points on [0, 180]).
  at::Tensor closed = at::cat({r, r.narrow(1, 0, 1)}, 1);  // [U, k+1]
  at::Tensor pos = at::linspace(0, static_cast<double>(k), s, at::kDouble);
  at::Tensor lo = pos.floor().clamp_max(k - 1).to(at::kLong);
  at::Tensor frac = pos - lo.to(at::kDouble);
  at::Tensor y = closed.index_select(1, lo) * (1 - frac) + closed.index_select(1, lo + 1) * frac;

  at::Tensor x = at::linspace(-kPi, kPi, s, at::kDouble).unsqueeze(0);  // [1, s]
  // Initial guess: circular mean of the interpolated curve, kappa 1, A = max.
  at::Tensor w = y - y.amin(1, true);
  at::Tensor x0 = at::atan2((w * at::sin(x)).sum(1), (w * at::cos(x)).sum(1));
  at::Tensor kappa = at::ones({u}, at::kDouble);
  at::Tensor amp = y.amax(1).clamp_min(1e-12);
  at::Tensor lambda = at::full({u}, 1e-3, at::kDouble);

  auto model = [&](const at::Tensor& a, const at::Tensor& kp, const at::Tensor& m) {
    return a.unsqueeze(1) * at::exp(kp.unsqueeze(1) * (at::cos(x - m.unsqueeze(1)) - 1));
  };
  auto cost = [&](const at::Tensor& f) { return ((f - y) * (f - y)).sum(1); };
  at::Tensor f = model(amp, kappa, x0);
  at::Tensor c = cost(f);
  at::Tensor eye = at::eye(3, at::kDouble).unsqueeze(0);
  for (int it = 0; it < options.iterations; ++it) {
    at::Tensor d = x - x0.unsqueeze(1);
    at::Tensor e = at::exp(kappa.unsqueeze(1) * (at::cos(d) - 1));
    at::Tensor ja = e;
    at::Tensor jk = amp.unsqueeze(1) * e * (at::cos(d) - 1);
    at::Tensor jm = amp.unsqueeze(1) * e * kappa.unsqueeze(1) * at::sin(d);
    at::Tensor jac = at::stack({ja, jk, jm}, 2);  // [U, s, 3]
    at::Tensor res = (f - y).unsqueeze(2);        // [U, s, 1]
    at::Tensor jtj = at::matmul(jac.transpose(1, 2), jac);
    at::Tensor jtr = at::matmul(jac.transpose(1, 2), res);
    at::Tensor diag = at::diagonal(jtj, 0, 1, 2).clamp_min(1e-12);
    at::Tensor lhs = jtj + lambda.view({u, 1, 1}) * at::diag_embed(diag) + 1e-12 * eye;
    at::Tensor step = at::linalg_solve(lhs, -jtr).squeeze(2);  // [U, 3]
    at::Tensor na = amp + step.select(1, 0);
    at::Tensor nk = kappa + step.select(1, 1);
    at::Tensor nm = x0 + step.select(1, 2);
    at::Tensor nf = model(na, nk, nm);
    at::Tensor nc = cost(nf);
    at::Tensor better = (nc < c) & at::isfinite(nc);
    amp = at::where(better, na, amp);
    kappa = at::where(better, nk, kappa);
    x0 = at::where(better, nm, x0);
    f = at::where(better.unsqueeze(1), nf, f);
    c = at::where(better, nc, c);
    lambda = at::where(better, lambda * 0.3, lambda * 10).clamp(1e-9, 1e9);
  }
  at::Tensor best = f.argmax(1).to(at::kDouble);
  at::Tensor deg = best * (180.0 / (s - 1));
  return at::where(deg >= 180.0 - 1e-9, deg - 180.0, deg);
}

at::Tensor PeakToPeak(const at::Tensor& curves) {
  at::Tensor r = AsDouble2d(curves, "curves");
  return r.amax(1) - r.amin(1);
}

namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  double pos = p / 100.0 * (v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  double fr = pos - lo;
  return v[lo] * (1 - fr) + v[hi] * fr;
}

std::vector<double> FiniteValues(const at::Tensor& t) {
  at::Tensor d = t.to(at::kCPU).to(at::kDouble).contiguous().reshape({-1});
  std::vector<double> out;
  const double* p = d.data_ptr<double>();
  for (int64_t i = 0; i < d.numel(); ++i) {
    if (std::isfinite(p[i])) out.push_back(p[i]);
  }
  return out;
}

}  // namespace

at::Tensor AbovePercentile(const at::Tensor& values, double percentile) {
  at::Tensor v = values.to(at::kCPU).to(at::kDouble).reshape({-1});
  double cut = Percentile(FiniteValues(v), percentile);
  if (!std::isfinite(cut)) return at::zeros({v.size(0)}, at::kBool);
  return (v > cut) & at::isfinite(v);
}

SelectivityResult SelectiveFraction(const at::Tensor& curves, const at::Tensor& cv,
                                    const SelectivityOptions& options) {
  at::Tensor r = AsDouble2d(curves, "curves");
  SelectivityResult out;
  double mn = r.min().item<double>();
  if (mn < 0) r = r - mn;
  double median_peak = Percentile(FiniteValues(r.amax(1)), 50);
  out.scale = (median_peak > 0) ? options.reference_median_peak / median_peak : 1.0;
  r = r * out.scale;
  at::Tensor responsive = r.mean(1) > options.min_mean;
  at::Tensor c = cv.to(at::kCPU).to(at::kDouble).reshape({-1});
  at::Tensor selective = responsive & (c < options.cv_threshold);
  out.responsive = responsive.sum().item<int64_t>();
  out.selective = selective.sum().item<int64_t>();
  out.selective_fraction =
      out.responsive > 0 ? static_cast<double>(out.selective) / out.responsive : 0.0;
  return out;
}

// --- Smoothness --------------------------------------------------------------

double CurveSmoothness(const std::vector<double>& curve) {
  if (curve.empty() || !std::isfinite(curve[0])) return kNaN;
  double mx = -std::numeric_limits<double>::infinity();
  for (double v : curve) {
    if (!std::isfinite(v)) break;
    mx = std::max(mx, v);
  }
  if (mx <= 0) return 1.0;
  return (mx - curve[0]) / mx;
}

namespace {

// One repetition: mean |delta| per distance bin for the sampled units `idx`.
std::vector<double> BinnedDifferences(const at::Tensor& values, const at::Tensor& positions,
                                      const at::Tensor& idx, const SmoothnessOptions& o,
                                      std::mt19937_64* shuffle_rng) {
  at::Tensor v = values.index_select(0, idx);
  at::Tensor p = positions.index_select(0, idx);
  const int64_t n = idx.size(0);
  at::Tensor tri = at::tril_indices(n, n, -1, at::kLong);  // i > j
  at::Tensor a = tri[0], b = tri[1];
  at::Tensor diff = (v.index_select(0, a) - v.index_select(0, b)).abs();
  if (o.period > 0) {
    diff = at::fmod(diff, o.period);
    diff = at::where(diff > o.period / 2, o.period - diff, diff);
  }
  at::Tensor dist = (p.index_select(0, a) - p.index_select(0, b)).pow(2).sum(1).sqrt();
  if (shuffle_rng != nullptr) {
    std::vector<int64_t> perm(dist.size(0));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), *shuffle_rng);
    dist = dist.index_select(0, at::tensor(perm, at::kLong));
  }
  at::Tensor keep = dist <= o.max_distance_mm;
  dist = dist.masked_select(keep);
  diff = diff.masked_select(keep);
  at::Tensor bin = (dist * (o.num_bins / o.max_distance_mm)).floor().to(at::kLong)
                       .clamp(0, o.num_bins - 1);
  at::Tensor sums = at::zeros({o.num_bins}, at::kDouble).index_add_(0, bin, diff);
  at::Tensor cnt =
      at::zeros({o.num_bins}, at::kDouble).index_add_(0, bin, at::ones_like(diff));
  std::vector<double> out(o.num_bins);
  for (int b2 = 0; b2 < o.num_bins; ++b2) {
    double c = cnt[b2].item<double>();
    out[b2] = c > 0 ? sums[b2].item<double>() / c : kNaN;
  }
  return out;
}

}  // namespace

SmoothnessResult DistanceSmoothness(const at::Tensor& values, const at::Tensor& positions,
                                    const at::Tensor& eligible, const SmoothnessOptions& o,
                                    const at::Tensor& post_sample_mask) {
  at::Tensor v = values.to(at::kCPU).to(at::kDouble).reshape({-1});
  at::Tensor p = positions.to(at::kCPU).to(at::kDouble).reshape({-1, 2});
  if (p.size(0) != v.size(0)) {
    throw std::invalid_argument("DistanceSmoothness: values and positions differ in units");
  }
  if (o.num_bins < 1 || o.repetitions < 1 || !(o.max_distance_mm > 0)) {
    throw std::invalid_argument("DistanceSmoothness: bad options");
  }
  at::Tensor ok = at::isfinite(v);
  if (eligible.defined()) ok = ok & eligible.to(at::kCPU).to(at::kBool).reshape({-1});
  at::Tensor pool = ok.nonzero().reshape({-1});
  std::vector<int64_t> pool_v(pool.data_ptr<int64_t>(), pool.data_ptr<int64_t>() + pool.numel());
  at::Tensor post;
  if (post_sample_mask.defined()) post = post_sample_mask.to(at::kCPU).to(at::kBool).reshape({-1});

  SmoothnessResult r;
  r.bin_edges = at::linspace(0, o.max_distance_mm, o.num_bins + 1, at::kDouble);
  r.midpoints = (r.bin_edges.narrow(0, 0, o.num_bins) + r.bin_edges.narrow(0, 1, o.num_bins)) / 2;
  r.curves = at::full({o.repetitions, o.num_bins}, kNaN, at::kDouble);
  r.chance_curves = at::full({o.repetitions, o.num_bins}, kNaN, at::kDouble);
  if (pool_v.size() < 2) {
    r.score = r.chance_score = kNaN;
    return r;
  }
  std::mt19937_64 rng(o.seed);
  std::mt19937_64 shuffle_rng(o.seed ^ 0x9e3779b97f4a7c15ULL);
  double score_sum = 0, chance_sum = 0;
  int score_n = 0, chance_n = 0;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    std::vector<int64_t> sample = pool_v;
    const size_t m = std::min<size_t>(sample.size(), static_cast<size_t>(o.sample_size));
    for (size_t i = 0; i < m; ++i) {  // partial Fisher-Yates: m draws w/o replacement
      std::uniform_int_distribution<size_t> pick(i, sample.size() - 1);
      std::swap(sample[i], sample[pick(rng)]);
    }
    sample.resize(m);
    if (post.defined()) {
      const bool* pp = post.data_ptr<bool>();
      std::vector<int64_t> kept;
      for (int64_t u : sample) {
        if (pp[u]) kept.push_back(u);
      }
      sample.swap(kept);
    }
    if (sample.size() < 2) continue;
    at::Tensor idx = at::tensor(sample, at::kLong);
    std::vector<double> c = BinnedDifferences(v, p, idx, o, nullptr);
    std::vector<double> ch = BinnedDifferences(v, p, idx, o, &shuffle_rng);
    r.curves[rep].copy_(at::tensor(c, at::kDouble));
    r.chance_curves[rep].copy_(at::tensor(ch, at::kDouble));
    double s = CurveSmoothness(c), sc = CurveSmoothness(ch);
    if (std::isfinite(s)) score_sum += s, ++score_n;
    if (std::isfinite(sc)) chance_sum += sc, ++chance_n;
  }
  r.score = score_n > 0 ? score_sum / score_n : kNaN;
  r.chance_score = chance_n > 0 ? chance_sum / chance_n : kNaN;
  return r;
}

}  // namespace topolab::science
