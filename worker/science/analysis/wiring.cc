// k-means, Hungarian assignment and the wiring-length analysis (wiring.h).
#include "worker/science/analysis/wiring.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

namespace topolab::science {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double Dist2(const Point2& a, const Point2& b) {
  double dx = a[0] - b[0], dy = a[1] - b[1];
  return dx * dx + dy * dy;
}

KMeansResult KMeansOnce(const std::vector<Point2>& pts, int k, std::mt19937_64& rng,
                        int max_iterations) {
  const size_t n = pts.size();
  KMeansResult r;
  // k-means++ seeding.
  std::uniform_int_distribution<size_t> first(0, n - 1);
  r.centroids.push_back(pts[first(rng)]);
  std::vector<double> d2(n, kInf);
  while (static_cast<int>(r.centroids.size()) < k) {
    double total = 0;
    for (size_t i = 0; i < n; ++i) {
      d2[i] = std::min(d2[i], Dist2(pts[i], r.centroids.back()));
      total += d2[i];
    }
    size_t pick = 0;
    if (total > 0) {
      double t = std::uniform_real_distribution<double>(0, total)(rng), acc = 0;
      for (pick = 0; pick + 1 < n; ++pick) {
        acc += d2[pick];
        if (acc >= t) break;
      }
    } else {
      pick = first(rng);
    }
    r.centroids.push_back(pts[pick]);
  }
  r.assignment.assign(n, 0);
  for (int it = 0; it < max_iterations; ++it) {
    bool changed = false;
    for (size_t i = 0; i < n; ++i) {
      int best = 0;
      double bd = kInf;
      for (int c = 0; c < k; ++c) {
        double d = Dist2(pts[i], r.centroids[c]);
        if (d < bd) bd = d, best = c;
      }
      if (best != r.assignment[i] || it == 0) changed = changed || best != r.assignment[i];
      r.assignment[i] = best;
    }
    std::vector<Point2> sum(k, Point2{0, 0});
    std::vector<int> cnt(k, 0);
    for (size_t i = 0; i < n; ++i) {
      sum[r.assignment[i]][0] += pts[i][0];
      sum[r.assignment[i]][1] += pts[i][1];
      ++cnt[r.assignment[i]];
    }
    for (int c = 0; c < k; ++c) {
      if (cnt[c] > 0) {
        r.centroids[c] = {sum[c][0] / cnt[c], sum[c][1] / cnt[c]};
      } else {
        // Empty cluster: move it to the point farthest from its centroid.
        size_t far = 0;
        double fd = -1;
        for (size_t i = 0; i < n; ++i) {
          double d = Dist2(pts[i], r.centroids[r.assignment[i]]);
          if (d > fd) fd = d, far = i;
        }
        r.centroids[c] = pts[far];
        changed = true;
      }
    }
    if (!changed && it > 0) break;
  }
  r.inertia = 0;
  for (size_t i = 0; i < n; ++i) {
    int best = 0;
    double bd = kInf;
    for (int c = 0; c < k; ++c) {
      double d = Dist2(pts[i], r.centroids[c]);
      if (d < bd) bd = d, best = c;
    }
    r.assignment[i] = best;
    r.inertia += bd;
  }
  return r;
}

}  // namespace

KMeansResult KMeans2d(const std::vector<Point2>& points, int k, uint64_t seed, int restarts,
                      int max_iterations) {
  if (k < 1 || static_cast<size_t>(k) > points.size()) {
    throw std::invalid_argument("KMeans2d: k must be in [1, number of points]");
  }
  std::mt19937_64 rng(seed);
  KMeansResult best;
  best.inertia = kInf;
  for (int r = 0; r < std::max(1, restarts); ++r) {
    KMeansResult cur = KMeansOnce(points, k, rng, max_iterations);
    if (cur.inertia < best.inertia) best = std::move(cur);
  }
  return best;
}

double HungarianAssign(const std::vector<std::vector<double>>& cost,
                       std::vector<int>* row_to_col) {
  const int n = static_cast<int>(cost.size());
  if (n == 0) {
    if (row_to_col) row_to_col->clear();
    return 0;
  }
  const int m = static_cast<int>(cost[0].size());
  if (n > m) {
    std::vector<std::vector<double>> t(m, std::vector<double>(n));
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) t[j][i] = cost[i][j];
    std::vector<int> col_to_row;
    double total = HungarianAssign(t, &col_to_row);
    if (row_to_col) {
      row_to_col->assign(n, -1);
      for (int j = 0; j < m; ++j) (*row_to_col)[col_to_row[j]] = j;
    }
    return total;
  }
  // Potentials method (1-based), rows 1..n assigned to columns 1..m.
  std::vector<double> u(n + 1, 0), v(m + 1, 0);
  std::vector<int> p(m + 1, 0), way(m + 1, 0);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::vector<double> minv(m + 1, kInf);
    std::vector<char> used(m + 1, false);
    do {
      used[j0] = true;
      int i0 = p[j0], j1 = 0;
      double delta = kInf;
      for (int j = 1; j <= m; ++j) {
        if (used[j]) continue;
        double cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (int j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> assign(n, -1);
  for (int j = 1; j <= m; ++j) {
    if (p[j] != 0) assign[p[j] - 1] = j - 1;
  }
  double total = 0;
  for (int i = 0; i < n; ++i) total += cost[i][assign[i]];
  if (row_to_col) *row_to_col = std::move(assign);
  return total;
}

double WiringLengthForPoints(const std::vector<Point2>& source, const std::vector<Point2>& target,
                             const WiringOptions& o, uint64_t seed) {
  if (source.empty() || target.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double limit = source.size() * o.inertia_radius_mm * o.inertia_radius_mm;
  const int kmax = std::min<int>(o.max_k, static_cast<int>(source.size()));
  KMeansResult src;
  for (int k = 1; k <= kmax; ++k) {
    src = KMeans2d(source, k, seed);
    if (src.inertia <= limit) break;
  }
  const int k = static_cast<int>(src.centroids.size());
  KMeansResult tgt = KMeans2d(target, std::min<int>(k, static_cast<int>(target.size())), seed + 1);
  double shift = o.shift_mm;
  if (shift <= 0) {
    double lo = kInf, hi = -kInf;
    for (const auto& p : target) {
      lo = std::min({lo, p[0], p[1]});
      hi = std::max({hi, p[0], p[1]});
    }
    shift = hi - lo;
  }
  static const double kDirs[4][2] = {{0, 1}, {0, -1}, {-1, 0}, {1, 0}};
  double total = 0;
  for (const auto& d : kDirs) {
    std::vector<std::vector<double>> cost(src.centroids.size(),
                                          std::vector<double>(tgt.centroids.size()));
    for (size_t i = 0; i < src.centroids.size(); ++i) {
      for (size_t j = 0; j < tgt.centroids.size(); ++j) {
        Point2 t{tgt.centroids[j][0] + d[0] * shift, tgt.centroids[j][1] + d[1] * shift};
        cost[i][j] = std::sqrt(Dist2(src.centroids[i], t));
      }
    }
    total += HungarianAssign(cost);
  }
  return total / 4.0;
}

namespace {

// Active units of one pattern inside [x0, x0+w] x [y0, y0+w] (w <= 0: all).
std::vector<Point2> ActivePoints(const at::Tensor& resp, const at::Tensor& pos, double x0,
                                 double y0, double w, double percentile) {
  const int64_t u = resp.size(0);
  const double* rp = resp.data_ptr<double>();
  const double* pp = pos.data_ptr<double>();
  std::vector<int64_t> inside;
  std::vector<double> vals;
  for (int64_t i = 0; i < u; ++i) {
    double x = pp[2 * i], y = pp[2 * i + 1];
    if (w > 0 && (x < x0 || x > x0 + w || y < y0 || y > y0 + w)) continue;
    inside.push_back(i);
    vals.push_back(rp[i]);
  }
  std::vector<Point2> out;
  if (vals.empty()) return out;
  std::vector<double> sorted = vals;
  std::sort(sorted.begin(), sorted.end());
  double pos_q = percentile / 100.0 * (sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos_q));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double cut = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos_q - lo);
  for (size_t k = 0; k < inside.size(); ++k) {
    if (vals[k] > cut) out.push_back({pp[2 * inside[k]], pp[2 * inside[k] + 1]});
  }
  return out;
}

}  // namespace

WiringResult WiringLength(const at::Tensor& source_responses, const at::Tensor& source_positions,
                          const at::Tensor& target_responses, const at::Tensor& target_positions,
                          const WiringOptions& o) {
  at::Tensor sr = source_responses.to(at::kCPU).to(at::kDouble);
  sr = sr.reshape({sr.size(0), -1}).contiguous();
  at::Tensor tr = target_responses.to(at::kCPU).to(at::kDouble);
  tr = tr.reshape({tr.size(0), -1}).contiguous();
  at::Tensor sp = source_positions.to(at::kCPU).to(at::kDouble).contiguous();
  at::Tensor tp = target_positions.to(at::kCPU).to(at::kDouble).contiguous();
  if (sr.size(0) != tr.size(0) || sp.size(0) != sr.size(1) || tp.size(0) != tr.size(1)) {
    throw std::invalid_argument("WiringLength: responses/positions shapes disagree");
  }
  WiringResult r;
  const double lo_x = sp.select(1, 0).min().item<double>();
  const double hi_x = sp.select(1, 0).max().item<double>();
  const double lo_y = sp.select(1, 1).min().item<double>();
  const double hi_y = sp.select(1, 1).max().item<double>();
  std::mt19937_64 rng(o.seed);
  const bool whole = o.window_mm <= 0;
  const int windows = whole ? 1 : std::max(1, o.windows);
  double sum = 0;
  int n = 0;
  for (int64_t p = 0; p < sr.size(0); ++p) {
    for (int w = 0; w < windows; ++w) {
      double x0 = 0, y0 = 0;
      if (!whole) {
        x0 = std::uniform_real_distribution<double>(lo_x, std::max(lo_x, hi_x - o.window_mm))(rng);
        y0 = std::uniform_real_distribution<double>(lo_y, std::max(lo_y, hi_y - o.window_mm))(rng);
      }
      auto src = ActivePoints(sr[p], sp, x0, y0, whole ? 0 : o.window_mm, o.percentile);
      auto tgt = ActivePoints(tr[p], tp, x0, y0, whole ? 0 : o.window_mm, o.percentile);
      double len = WiringLengthForPoints(src, tgt, o, o.seed + 7919 * (p * windows + w));
      r.samples.push_back(len);
      if (std::isfinite(len)) sum += len, ++n;
    }
  }
  r.mean = n > 0 ? sum / n : std::numeric_limits<double>::quiet_NaN();
  return r;
}

}  // namespace topolab::science
