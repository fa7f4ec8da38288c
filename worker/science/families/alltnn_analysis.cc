// All-TNN sheet analyses. Window statistics use wrapped integral images, so
// every window size costs O(bins * H * W) whatever its radius.
#include "worker/science/families/alltnn_analysis.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "worker/science/viz/viz.h"

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Integral image of `maps` [B, H, W] padded by wrap: `before` rows/cols
// before and `after` after. Returns [B, H+before+after+1, W+before+after+1].
at::Tensor WrappedIntegral(const at::Tensor& maps, int64_t before, int64_t after) {
  const int64_t h = maps.size(1), w = maps.size(2);
  at::Tensor ri = at::remainder(at::arange(-before, h + after, at::kLong), h);
  at::Tensor ci = at::remainder(at::arange(-before, w + after, at::kLong), w);
  at::Tensor p = maps.to(at::kDouble).index_select(1, ri).index_select(2, ci);
  p = at::constant_pad_nd(p, {1, 0, 1, 0}, 0.0);
  return p.cumsum(1).cumsum(2);
}

// Window sums over offsets [-before, +after] from each position.
at::Tensor WindowSums(const at::Tensor& maps, int64_t before, int64_t after) {
  const int64_t h = maps.size(1), w = maps.size(2), span = before + after + 1;
  at::Tensor I = WrappedIntegral(maps, before, after);
  return I.narrow(1, span, h).narrow(2, span, w) - I.narrow(1, 0, h).narrow(2, span, w) -
         I.narrow(1, span, h).narrow(2, 0, w) + I.narrow(1, 0, h).narrow(2, 0, w);
}

at::Tensor OneHotBins(const at::Tensor& bins, int64_t n_bins) {
  at::Tensor b = bins.to(at::kLong);
  std::vector<at::Tensor> planes;
  for (int64_t k = 0; k < n_bins; ++k) planes.push_back((b == k).to(at::kDouble));
  return at::stack(planes);  // [n_bins, H, W]
}

}  // namespace

AllTnnGratingSet::AllTnnGratingSet(AllTnnGratingOptions options) : options_(std::move(options)) {
  for (double lambda : options_.wavelengths) {
    const int n_phases = std::max(1, static_cast<int>(std::lround(lambda)));
    for (int a = 0; a < options_.n_orientations; ++a) {
      for (int p = 0; p < n_phases; ++p) rows_.push_back({lambda, a, 2.0 * kPi * p / n_phases});
    }
  }
}

at::Tensor AllTnnGratingSet::Images(int64_t start, int64_t count) const {
  const int64_t s = options_.image_size;
  at::Tensor x = at::arange(s, at::kDouble).view({1, s});  // column
  at::Tensor y = at::arange(s, at::kDouble).view({s, 1});  // row
  std::vector<at::Tensor> out;
  for (int64_t i = start; i < start + count; ++i) {
    const Row& r = rows_.at(i);
    const double theta = kPi * r.orientation / options_.n_orientations;
    at::Tensor g = std::sin(theta) * x - std::cos(theta) * y;
    at::Tensor img = (at::sin(2.0 * kPi * g / r.wavelength + r.phase) + 1.0) / 2.0;
    out.push_back(img.to(at::kFloat).unsqueeze(0).expand({3, s, s}));
  }
  if (out.empty()) return at::empty({0, 3, s, s});
  return at::stack(out).contiguous();
}

nlohmann::json AllTnnGratingSet::Describe() const {
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < rows_.size(); ++i) {
    rows.push_back({{"index", i},
                    {"wavelength_px", rows_[i].wavelength},
                    {"orientation", rows_[i].orientation},
                    {"orientation_deg", 180.0 * rows_[i].orientation / options_.n_orientations},
                    {"phase_rad", rows_[i].phase}});
  }
  return {{"name", name()}, {"size", size()}, {"image_size", image_size()}, {"rows", rows}};
}

at::Tensor AllTnnGratingSet::OrientationLabels() const {
  std::vector<int64_t> l;
  for (const Row& r : rows_) l.push_back(r.orientation);
  return at::tensor(l, at::kLong);
}

at::Tensor VectorSumPreference(const at::Tensor& tuning) {
  const int64_t k = tuning.size(0);
  at::Tensor phi = at::arange(k, at::kDouble) * (2.0 * kPi / k);
  std::vector<int64_t> shape(tuning.dim(), 1);
  shape[0] = k;
  phi = phi.view(shape).to(tuning.device());
  at::Tensor a = tuning.to(at::kDouble);
  at::Tensor ang = at::atan2((a * at::sin(phi)).sum(0), (a * at::cos(phi)).sum(0));
  return at::remainder(ang, 2.0 * kPi) / (2.0 * kPi);
}

at::Tensor TuningSpread(const at::Tensor& tuning) {
  const int64_t k = tuning.size(0);
  at::Tensor a = tuning.to(at::kDouble);
  const double onehot_std = std::sqrt(1.0 / k - 1.0 / double(k * k));
  at::Tensor sum = a.sum(0);
  at::Tensor s = a.std(0, /*unbiased=*/false) / sum / onehot_std;
  return at::where(sum != 0, s, at::full_like(s, NAN));
}

at::Tensor BoxSumWrap(const at::Tensor& maps, int64_t r) { return WindowSums(maps, r, r); }

at::Tensor WindowEntropy(const at::Tensor& bins, int64_t n_bins, int64_t half_width) {
  at::Tensor counts = WindowSums(OneHotBins(bins, n_bins), half_width, half_width);
  at::Tensor total = counts.sum(0);
  at::Tensor p = counts / total.clamp_min(1.0);
  at::Tensor ent = -at::where(p > 0, p * at::log(p), at::zeros_like(p)).sum(0);
  return at::where(total > 0, ent, at::full_like(ent, NAN));
}

at::Tensor ClusterRadius(const at::Tensor& bins, int64_t n_bins) {
  const int64_t h = bins.size(0), w = bins.size(1), rmax = std::min(h, w) / 2;
  at::Tensor out = at::full({h, w}, NAN, at::kDouble);
  if (rmax == 0) return out;
  at::Tensor I = WrappedIntegral(OneHotBins(bins, n_bins), rmax, rmax);
  for (int64_t r = 0; r < rmax; ++r) {
    const int64_t lo = rmax - r, hi = rmax + r + 1;
    at::Tensor c = I.narrow(1, hi, h).narrow(2, hi, w) - I.narrow(1, lo, h).narrow(2, hi, w) -
                   I.narrow(1, hi, h).narrow(2, lo, w) + I.narrow(1, lo, h).narrow(2, lo, w);
    at::Tensor all = (c > 0.5).all(0);
    out = at::where(at::isnan(out) & all, at::full_like(out, double(r)), out);
  }
  return out;
}

at::Tensor RadialProfile(const at::Tensor& power) {
  const int64_t h = power.size(0), w = power.size(1);
  at::Tensor yy = (at::arange(h, at::kDouble) - double(h / 2)).view({h, 1});
  at::Tensor xx = (at::arange(w, at::kDouble) - double(w / 2)).view({1, w});
  at::Tensor r = at::round(at::sqrt(yy * yy + xx * xx)).to(at::kLong).flatten();
  at::Tensor p = power.to(at::kDouble).cpu().flatten();
  at::Tensor sums = at::bincount(r, p);
  at::Tensor counts = at::bincount(r).to(at::kDouble);
  return sums / counts.clamp_min(1.0);
}

at::Tensor PreferenceFftProfile(const at::Tensor& preference, const at::Tensor& silent) {
  at::Tensor pref = at::where(silent, at::zeros_like(preference), preference).to(at::kDouble);
  at::Tensor live = (~silent).to(at::kDouble);
  at::Tensor z = at::complex(live * at::cos(2.0 * kPi * pref), live * at::sin(2.0 * kPi * pref));
  at::Tensor f = at::fft_fftshift(at::fft_fft2(z));
  return RadialProfile(f.abs().pow(2));
}

OrientationMaps AnalyzeOrientation(const at::Tensor& row_means, const at::Tensor& orientation_of_row,
                                   int64_t n_orientations, int64_t window_half_width) {
  OrientationMaps m;
  at::Tensor resp = row_means.to(at::kDouble).cpu();
  at::Tensor labels = orientation_of_row.to(at::kLong).cpu();
  std::vector<at::Tensor> curves;
  for (int64_t k = 0; k < n_orientations; ++k) {
    at::Tensor idx = at::nonzero(labels == k).squeeze(1);
    if (idx.numel() == 0) throw std::invalid_argument("AnalyzeOrientation: an orientation has no rows");
    curves.push_back(std::get<0>(resp.index_select(0, idx).max(0)));
  }
  m.tuning = at::stack(curves);
  m.spread = TuningSpread(m.tuning);
  m.silent = at::isnan(m.spread) | (m.spread <= 0);
  m.spread = at::where(m.silent, at::full_like(m.spread, NAN), m.spread);
  at::Tensor pref = VectorSumPreference(m.tuning);
  m.preference = at::where(m.silent, at::full_like(pref, NAN), pref);
  at::Tensor bins = at::remainder(at::round(pref * n_orientations).to(at::kLong), n_orientations);
  m.bins = at::where(m.silent, at::full_like(bins, -1), bins);
  m.entropy = WindowEntropy(m.bins, n_orientations, window_half_width);
  m.mean_entropy = at::nanmean(m.entropy).item<double>();
  m.cluster_radius = ClusterRadius(m.bins, n_orientations);
  m.mean_cluster_radius = at::nanmean(m.cluster_radius).item<double>();
  m.fft_profile = PreferenceFftProfile(pref, m.silent);
  m.fraction_silent = m.silent.to(at::kDouble).mean().item<double>();
  return m;
}

at::Tensor CategoryDPrime(const ConditionAccumulator& acc) {
  const int64_t c = acc.num_conditions();
  std::vector<at::Tensor> rows;
  for (int64_t k = 0; k < c; ++k) {
    std::vector<int64_t> rest;
    for (int64_t j = 0; j < c; ++j) {
      if (j != k) rest.push_back(j);
    }
    at::Tensor mi, vi, mo, vo;
    acc.PooledMoments({k}, &mi, &vi);
    acc.PooledMoments(rest, &mo, &vo);
    rows.push_back((mi - mo) / ((at::sqrt(vi.clamp_min(0)) + at::sqrt(vo.clamp_min(0))) / 2.0 + 1e-10));
  }
  return at::stack(rows);
}

at::Tensor CategoryDPrime(const at::Tensor& responses, const at::Tensor& labels, int64_t n_categories) {
  ConditionAccumulator acc(n_categories, responses[0].numel(), /*second_moment=*/true);
  acc.Add(responses, labels);
  return CategoryDPrime(acc);
}

WinnerTakeAll CategoryWinnerTakeAll(const at::Tensor& dprime) {
  WinnerTakeAll r;
  at::Tensor d = dprime.to(at::kDouble);
  auto top = d.topk(std::min<int64_t>(2, d.size(0)), 0);
  at::Tensor best = std::get<0>(top)[0];
  at::Tensor arg = std::get<1>(top)[0];
  at::Tensor strict = d.size(0) > 1 ? best > std::get<0>(top)[1] : at::ones_like(best, at::kBool);
  r.winner = at::where(strict, arg, at::full_like(arg, -1));
  at::Tensor is_winner = at::arange(d.size(0), at::kLong).unsqueeze(1) == r.winner.unsqueeze(0);
  r.masked = at::where(is_winner, d, at::full_like(d, NAN));
  return r;
}

at::Tensor BoxSmoothWrap(const at::Tensor& map, int64_t size) {
  const int64_t before = size / 2, after = size - 1 - before;
  return WindowSums(map.unsqueeze(0), before, after)[0] / double(size * size);
}

at::Tensor StackMaps(const std::vector<at::Tensor>& maps) {
  int64_t h = 0, w = 0;
  for (const auto& m : maps) {
    h = std::max(h, m.size(0));
    w = std::max(w, m.size(1));
  }
  at::Tensor total = at::zeros({h, w}, at::kDouble);
  for (const auto& m : maps) {
    at::Tensor z = m.to(at::kDouble).cpu();
    if (m.size(0) != h || m.size(1) != w) {
      z = at::upsample_bilinear2d(z.view({1, 1, m.size(0), m.size(1)}), {h, w}, true)[0][0];
    }
    total = total + z;
  }
  return total;
}

at::Tensor DiscProfile(const at::Tensor& map) {
  const int64_t h = map.size(0), w = map.size(1), rmax = std::min(h, w) / 2;
  at::Tensor yy = (at::arange(h, at::kDouble) - (h - 1) / 2.0).view({h, 1});
  at::Tensor xx = (at::arange(w, at::kDouble) - (w - 1) / 2.0).view({1, w});
  at::Tensor dist = at::sqrt(yy * yy + xx * xx);
  at::Tensor m = map.to(at::kDouble).cpu();
  std::vector<double> prof;
  for (int64_t r = 1; r <= rmax; ++r) {
    at::Tensor inside = dist <= double(r);
    prof.push_back(m.masked_select(inside).mean().item<double>());
  }
  return at::tensor(prof, at::kDouble);
}

namespace {

template <typename ColourFn>
void WriteSheet(const std::string& path, int64_t h, int64_t w, int min_side, ColourFn colour) {
  const int block = static_cast<int>(std::max<int64_t>(1, (min_side + std::min(h, w) - 1) / std::min(h, w)));
  Canvas canvas(static_cast<int>(w) * block, static_cast<int>(h) * block);
  for (int64_t r = 0; r < h; ++r) {
    for (int64_t c = 0; c < w; ++c) {
      canvas.FillRect(static_cast<int>(c) * block, static_cast<int>(r) * block, block, block, colour(r, c));
    }
  }
  canvas.Save(path);
}

constexpr Rgb kNanGrey = {211, 211, 211};

}  // namespace

void WriteSheetOrientationPng(const std::string& path, const at::Tensor& preference, int min_side) {
  at::Tensor p = preference.to(at::kDouble).cpu().contiguous();
  auto a = p.accessor<double, 2>();
  WriteSheet(path, p.size(0), p.size(1), min_side, [&](int64_t r, int64_t c) {
    return std::isnan(a[r][c]) ? kNanGrey : OrientationColour(180.0 * a[r][c]);
  });
}

std::pair<double, double> SheetScalarRange(const at::Tensor& map, const std::string& colours) {
  at::Tensor m = map.to(at::kDouble).cpu();
  at::Tensor finite = m.masked_select(at::isfinite(m));
  double lo = 0, hi = 1;
  if (finite.numel() > 0) {
    if (colours == "diverging") {
      hi = at::quantile(finite.abs(), 0.99).item<double>();
      if (hi <= 0) hi = 1;
      lo = -hi;
    } else {
      lo = finite.min().item<double>();
      hi = finite.max().item<double>();
      if (hi <= lo) hi = lo + 1;
    }
  } else if (colours == "diverging") {
    lo = -1;
  }
  return {lo, hi};
}

void WriteSheetScalarPng(const std::string& path, const at::Tensor& map, const std::string& colours,
                         int min_side) {
  at::Tensor m = map.to(at::kDouble).cpu().contiguous();
  const std::pair<double, double> range = SheetScalarRange(m, colours);
  const double lo = range.first, hi = range.second;
  auto a = m.accessor<double, 2>();
  WriteSheet(path, m.size(0), m.size(1), min_side, [&](int64_t r, int64_t c) -> Rgb {
    const double v = a[r][c];
    if (!std::isfinite(v)) return kNanGrey;
    if (colours == "diverging") return DivergingColour(v / hi);
    const double t = std::clamp((v - lo) / (hi - lo), 0.0, 1.0) * 3.0;  // black-red-yellow-white
    const auto ch = [](double x) { return static_cast<uint8_t>(std::lround(255 * std::clamp(x, 0.0, 1.0))); };
    return {ch(t), ch(t - 1.0), ch(t - 2.0)};
  });
}

void WriteSheetCategoryPng(const std::string& path, const at::Tensor& winner, int64_t n_categories,
                           int min_side) {
  at::Tensor m = winner.to(at::kLong).cpu().contiguous();
  auto a = m.accessor<int64_t, 2>();
  WriteSheet(path, m.size(0), m.size(1), min_side, [&](int64_t r, int64_t c) {
    const int64_t k = a[r][c];
    return k < 0 ? kNanGrey : HsvToRgb(360.0 * k / std::max<int64_t>(n_categories, 1), 0.8, 0.95);
  });
}

}  // namespace topolab::science
