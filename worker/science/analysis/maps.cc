// Pinwheels, category t-values, patches and RSMs (maps.h).
#include "worker/science/analysis/maps.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

at::Tensor Positions(const at::Tensor& p, int64_t units) {
  at::Tensor q = p.to(at::kCPU).to(at::kDouble).contiguous();
  if (q.dim() != 2 || q.size(1) != 2 || q.size(0) != units) {
    throw std::invalid_argument("positions must be [" + std::to_string(units) +
                                ", 2] to match the per-unit values");
  }
  return q;
}

at::Tensor Vector(const at::Tensor& v) {
  return v.to(at::kCPU).to(at::kDouble).reshape({-1}).contiguous();
}

// Wraps an orientation difference (deg) into [-90, 90).
double WrapHalf(double d) {
  d = std::fmod(d + 90.0, 180.0);
  if (d < 0) d += 180.0;
  return d - 90.0;
}

}  // namespace

// --- Components --------------------------------------------------------------

at::Tensor LabelComponents8(const at::Tensor& mask, std::vector<int64_t>* sizes) {
  at::Tensor m = mask.to(at::kCPU).to(at::kBool).contiguous();
  const int64_t rows = m.size(0), cols = m.size(1);
  at::Tensor labels = at::full({rows, cols}, -1, at::kLong);
  const bool* mp = m.data_ptr<bool>();
  int64_t* lp = labels.data_ptr<int64_t>();
  sizes->clear();
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < rows * cols; ++start) {
    if (!mp[start] || lp[start] >= 0) continue;
    const int64_t id = static_cast<int64_t>(sizes->size());
    int64_t count = 0;
    stack.push_back(start);
    lp[start] = id;
    while (!stack.empty()) {
      int64_t cur = stack.back();
      stack.pop_back();
      ++count;
      int64_t i = cur / cols, j = cur % cols;
      for (int di = -1; di <= 1; ++di) {
        for (int dj = -1; dj <= 1; ++dj) {
          int64_t ni = i + di, nj = j + dj;
          if (ni < 0 || nj < 0 || ni >= rows || nj >= cols) continue;
          int64_t n = ni * cols + nj;
          if (mp[n] && lp[n] < 0) {
            lp[n] = id;
            stack.push_back(n);
          }
        }
      }
    }
    sizes->push_back(count);
  }
  return labels;
}

// --- Pinwheels ---------------------------------------------------------------

SmoothedOrientationMap SmoothOrientationMap(const at::Tensor& pref_deg,
                                            const at::Tensor& positions,
                                            const PinwheelOptions& o) {
  at::Tensor pref = Vector(pref_deg);
  at::Tensor pos = Positions(positions, pref.size(0));
  if (!(o.window_mm > 0) || !(o.stride_mm > 0)) {
    throw std::invalid_argument("pinwheel window_mm and stride_mm must be > 0");
  }
  const double min_x = pos.select(1, 0).min().item<double>();
  const double max_x = pos.select(1, 0).max().item<double>();
  const double min_y = pos.select(1, 1).min().item<double>();
  const double max_y = pos.select(1, 1).max().item<double>();
  auto count = [&](double range) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::floor((range - o.window_mm) /
                                                                o.stride_mm)) + 1);
  };
  SmoothedOrientationMap out;
  out.grid.cols = count(max_x - min_x);
  out.grid.rows = count(max_y - min_y);
  out.grid.dx = out.grid.dy = o.stride_mm;
  out.grid.x0 = min_x + o.window_mm / 2;
  out.grid.y0 = min_y + o.window_mm / 2;
  const int64_t rows = out.grid.rows, cols = out.grid.cols;
  std::vector<double> sc(rows * cols, 0), ss(rows * cols, 0), n(rows * cols, 0);
  const double* pp = pos.data_ptr<double>();
  const double* vp = pref.data_ptr<double>();
  for (int64_t u = 0; u < pref.size(0); ++u) {
    if (!std::isfinite(vp[u])) continue;
    const double x = pp[2 * u] - min_x, y = pp[2 * u + 1] - min_y;
    // Window k covers [k*stride, k*stride + w]; the unit is in windows
    // ceil((x - w)/stride) .. floor(x/stride).
    int64_t j0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((x - o.window_mm) / o.stride_mm - 1e-12)));
    int64_t j1 = std::min<int64_t>(cols - 1, static_cast<int64_t>(std::floor(x / o.stride_mm + 1e-12)));
    int64_t i0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((y - o.window_mm) / o.stride_mm - 1e-12)));
    int64_t i1 = std::min<int64_t>(rows - 1, static_cast<int64_t>(std::floor(y / o.stride_mm + 1e-12)));
    const double a = vp[u] * kPi / 90.0;  // doubled angle
    const double c = std::cos(a), s = std::sin(a);
    for (int64_t i = i0; i <= i1; ++i) {
      for (int64_t j = j0; j <= j1; ++j) {
        sc[i * cols + j] += c;
        ss[i * cols + j] += s;
        n[i * cols + j] += 1;
      }
    }
  }
  out.angle_deg = at::full({rows, cols}, kNaN, at::kDouble);
  out.heterogeneity = at::full({rows, cols}, kNaN, at::kDouble);
  out.counts = at::tensor(n, at::kDouble).reshape({rows, cols});
  double* ap = out.angle_deg.data_ptr<double>();
  double* hp = out.heterogeneity.data_ptr<double>();
  for (int64_t k = 0; k < rows * cols; ++k) {
    if (n[k] <= 0) continue;
    double ang = std::atan2(ss[k], sc[k]) * 90.0 / kPi;
    if (ang < 0) ang += 180.0;
    ap[k] = ang >= 180.0 ? ang - 180.0 : ang;
    double r = std::min(1.0, std::sqrt(sc[k] * sc[k] + ss[k] * ss[k]) / n[k]);
    // scipy.stats.circstd(high=180): sqrt(-2 ln R) * period / (2 pi).
    double sd = std::sqrt(std::max(0.0, -2.0 * std::log(std::max(r, 1e-300)))) * 90.0 / kPi;
    hp[k] = sd / n[k];
  }
  return out;
}

at::Tensor WindingNumbers(const at::Tensor& angle_deg, bool closed_loop) {
  at::Tensor a = angle_deg.to(at::kCPU).to(at::kDouble).contiguous();
  const int64_t rows = a.size(0), cols = a.size(1);
  at::Tensor w = at::full({rows, cols}, kNaN, at::kDouble);
  const double* ap = a.data_ptr<double>();
  double* wp = w.data_ptr<double>();
  static const int kDi[8] = {-1, -1, -1, 0, 1, 1, 1, 0};  // NW N NE E SE S SW W
  static const int kDj[8] = {-1, 0, 1, 1, 1, 0, -1, -1};
  for (int64_t i = 1; i + 1 < rows; ++i) {
    for (int64_t j = 1; j + 1 < cols; ++j) {
      double ring[8];
      bool ok = true;
      for (int k = 0; k < 8; ++k) {
        ring[k] = ap[(i + kDi[k]) * cols + (j + kDj[k])];
        ok = ok && std::isfinite(ring[k]);
      }
      if (!ok) continue;
      double sum = 0;
      const int steps = closed_loop ? 8 : 7;
      for (int k = 0; k < steps; ++k) sum += WrapHalf(ring[(k + 1) % 8] - ring[k]);
      wp[i * cols + j] = sum / 360.0;
    }
  }
  return w;
}

PinwheelResult FindPinwheels(const at::Tensor& pref_deg, const at::Tensor& positions,
                             const PinwheelOptions& o) {
  PinwheelResult r;
  r.map = SmoothOrientationMap(pref_deg, positions, o);
  r.winding = WindingNumbers(r.map.angle_deg, o.closed_loop);
  at::Tensor low_het = r.map.heterogeneity < o.heterogeneity_threshold;
  for (int sign : {+1, -1}) {
    at::Tensor cand = (sign > 0 ? r.winding > o.winding_threshold
                                : r.winding < -o.winding_threshold) & low_het;
    std::vector<int64_t> sizes;
    at::Tensor labels = LabelComponents8(cand, &sizes);
    const int64_t* lp = labels.data_ptr<int64_t>();
    std::vector<double> sx(sizes.size(), 0), sy(sizes.size(), 0);
    for (int64_t k = 0; k < labels.numel(); ++k) {
      if (lp[k] < 0) continue;
      sx[lp[k]] += r.map.grid.x0 + (k % r.map.grid.cols) * r.map.grid.dx;
      sy[lp[k]] += r.map.grid.y0 + (k / r.map.grid.cols) * r.map.grid.dy;
    }
    for (size_t c = 0; c < sizes.size(); ++c) {
      if (sizes[c] < o.min_component_pixels) continue;
      Pinwheel p;
      p.sign = sign;
      p.pixels = sizes[c];
      p.x_mm = sx[c] / sizes[c];
      p.y_mm = sy[c] / sizes[c];
      r.pinwheels.push_back(p);
      (sign > 0 ? r.positive : r.negative) += 1;
    }
  }
  r.total = r.positive + r.negative;
  at::Tensor pos = positions.to(at::kCPU).to(at::kDouble);
  r.extent_mm = pos.max().item<double>() - pos.min().item<double>();
  const double columns = r.extent_mm / o.column_spacing_mm;
  r.density = columns > 0 ? r.total / (columns * columns) : 0.0;
  return r;
}

// --- t-values ------------------------------------------------------------------

namespace {

at::Tensor TFromMoments(const at::Tensor& m_on, const at::Tensor& v_on, double n_on,
                        const at::Tensor& m_off, const at::Tensor& v_off, double n_off) {
  at::Tensor den = at::sqrt(v_on / n_on + v_off / n_off);
  at::Tensor t = (m_on - m_off) / den;
  return at::where(den > 0, t, at::zeros_like(t));
}

}  // namespace

at::Tensor DomainTValues(const ConditionAccumulator& acc, const std::vector<int64_t>& on) {
  std::vector<int64_t> off;
  for (int64_t k = 0; k < acc.num_conditions(); ++k) {
    if (std::find(on.begin(), on.end(), k) == on.end()) off.push_back(k);
  }
  if (on.empty() || off.empty()) {
    throw std::invalid_argument("DomainTValues: on and off sets must both be non-empty");
  }
  at::Tensor m_on, v_on, m_off, v_off;
  acc.PooledMoments(on, &m_on, &v_on);
  acc.PooledMoments(off, &m_off, &v_off);
  double n_on = acc.counts().index_select(0, at::tensor(on, at::kLong)).sum().item<double>();
  double n_off = acc.counts().index_select(0, at::tensor(off, at::kLong)).sum().item<double>();
  if (n_on <= 0 || n_off <= 0) return at::zeros({acc.num_units()}, at::kDouble);
  return TFromMoments(m_on, v_on, n_on, m_off, v_off, n_off);
}

at::Tensor WelchT(const at::Tensor& responses, const at::Tensor& on) {
  at::Tensor r = responses.to(at::kCPU).to(at::kDouble);
  r = r.reshape({r.size(0), -1});
  at::Tensor m = on.to(at::kCPU).to(at::kBool).reshape({-1});
  at::Tensor a = r.index({m}), b = r.index({~m});
  if (a.size(0) == 0 || b.size(0) == 0) {
    throw std::invalid_argument("WelchT: on and off sets must both be non-empty");
  }
  return TFromMoments(a.mean(0), a.var(0, /*unbiased=*/false), a.size(0), b.mean(0),
                      b.var(0, /*unbiased=*/false), b.size(0));
}

// --- Patches -------------------------------------------------------------------

at::Tensor GaussianSmoothedMap(const at::Tensor& values, const at::Tensor& positions,
                               const SheetGrid& g, double sigma_mm) {
  at::Tensor v = Vector(values);
  at::Tensor pos = Positions(positions, v.size(0));
  at::Tensor finite = at::isfinite(v);
  v = at::where(finite, v, at::zeros_like(v));
  at::Tensor wmask = finite.to(at::kDouble);
  at::Tensor xs = g.x0 + at::arange(g.cols, at::kDouble) * g.dx;
  at::Tensor ys = g.y0 + at::arange(g.rows, at::kDouble) * g.dy;
  at::Tensor ax = xs.repeat({g.rows});                 // anchor x, row-major
  at::Tensor ay = ys.repeat_interleave(g.cols);        // anchor y
  const int64_t anchors = g.rows * g.cols;
  at::Tensor out = at::empty({anchors}, at::kDouble);
  // Chunks of anchors keep the [chunk, U] weight matrix around 32 MB.
  const int64_t chunk = std::max<int64_t>(1, (1 << 22) / std::max<int64_t>(1, v.size(0)));
  at::Tensor ux = pos.select(1, 0).unsqueeze(0), uy = pos.select(1, 1).unsqueeze(0);
  for (int64_t s = 0; s < anchors; s += chunk) {
    int64_t n = std::min(chunk, anchors - s);
    at::Tensor dxx = ax.narrow(0, s, n).unsqueeze(1) - ux;
    at::Tensor dyy = ay.narrow(0, s, n).unsqueeze(1) - uy;
    at::Tensor w = at::exp(-(dxx * dxx + dyy * dyy) / (2 * sigma_mm * sigma_mm)) * wmask;
    at::Tensor num = at::mv(w, v), den = w.sum(1);
    out.narrow(0, s, n).copy_(at::where(den > 0, num / den, at::zeros_like(num)));
  }
  return out.reshape({g.rows, g.cols});
}

PatchResult FindPatches(const at::Tensor& t, const at::Tensor& positions, const PatchOptions& o) {
  at::Tensor v = Vector(t);
  at::Tensor pos = Positions(positions, v.size(0));
  if (o.grid < 2 || !(o.sigma_mm > 0)) throw std::invalid_argument("patches: bad grid or sigma");
  PatchResult r;
  const double lo = pos.min().item<double>(), hi = pos.max().item<double>();
  const double step = (hi - lo) / (o.grid - 1);
  r.grid = SheetGrid{lo, lo, step > 0 ? step : 1.0, step > 0 ? step : 1.0, o.grid, o.grid};
  r.smoothed = GaussianSmoothedMap(v, pos, r.grid, o.sigma_mm);
  at::Tensor mask = r.smoothed >= o.threshold;  // values < threshold are zeroed
  mask = mask & (r.smoothed > 0);
  std::vector<int64_t> sizes;
  r.components = LabelComponents8(mask, &sizes);
  const int64_t ncomp = static_cast<int64_t>(sizes.size());
  if (ncomp == 0) return r;

  // Member units: within member_radius of any pixel centre of a component.
  std::vector<std::vector<int64_t>> members(ncomp);
  const int64_t* lp = r.components.data_ptr<int64_t>();
  const double* pp = pos.data_ptr<double>();
  const double rad = o.member_radius_mm, rad2 = rad * rad;
  const int64_t reach = static_cast<int64_t>(std::ceil(rad / r.grid.dx)) + 1;
  std::vector<int64_t> seen;
  for (int64_t u = 0; u < v.size(0); ++u) {
    const double x = pp[2 * u], y = pp[2 * u + 1];
    const int64_t cj = static_cast<int64_t>(std::llround((x - r.grid.x0) / r.grid.dx));
    const int64_t ci = static_cast<int64_t>(std::llround((y - r.grid.y0) / r.grid.dy));
    seen.clear();
    for (int64_t i = std::max<int64_t>(0, ci - reach); i <= std::min(o.grid - 1, ci + reach); ++i) {
      for (int64_t j = std::max<int64_t>(0, cj - reach); j <= std::min(o.grid - 1, cj + reach);
           ++j) {
        int64_t c = lp[i * o.grid + j];
        if (c < 0) continue;
        double px = r.grid.x0 + j * r.grid.dx - x, py = r.grid.y0 + i * r.grid.dy - y;
        if (px * px + py * py <= rad2 &&
            std::find(seen.begin(), seen.end(), c) == seen.end()) {
          seen.push_back(c);
          members[c].push_back(u);
        }
      }
    }
  }
  for (int64_t c = 0; c < ncomp; ++c) {
    if (static_cast<int64_t>(members[c].size()) < o.min_member_units) continue;
    Patch p;
    p.component = c;
    p.units = members[c];
    p.pixels = sizes[c];
    p.area_mm2 = sizes[c] * r.grid.dx * r.grid.dy;
    for (int64_t u : p.units) {
      p.centroid_x += pp[2 * u];
      p.centroid_y += pp[2 * u + 1];
    }
    p.centroid_x /= p.units.size();
    p.centroid_y /= p.units.size();
    const bool keep = p.area_mm2 >= o.min_area_mm2 && p.area_mm2 <= o.max_area_mm2 &&
                      static_cast<int64_t>(p.units.size()) >= o.min_units;
    (keep ? r.patches : r.rejected).push_back(std::move(p));
  }
  return r;
}

// --- RSM -----------------------------------------------------------------------

at::Tensor ClassRsm(const at::Tensor& class_means) {
  at::Tensor m = class_means.to(at::kCPU).to(at::kDouble);
  m = m.reshape({m.size(0), -1});
  m = at::where(at::isfinite(m), m, at::zeros_like(m));
  at::Tensor c = m - m.mean(1, true);
  at::Tensor norm = c.pow(2).sum(1).sqrt();
  at::Tensor safe = at::where(norm > 0, norm, at::ones_like(norm));
  at::Tensor z = c / safe.unsqueeze(1);
  at::Tensor rsm = at::matmul(z, z.t()).clamp(-1, 1);
  rsm.diagonal().fill_(1.0);
  return rsm;
}

}  // namespace topolab::science
