// SwapOpt driver: window sampling, the deterministic parallel schedule and
// the accept/undo rule. The arithmetic lives in swapopt_kernels.cc.
#include "worker/science/tdann/swapopt.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/science/tdann/rng.h"
#include "worker/science/tdann/swapopt_kernels.h"

namespace topolab::science {

absl::StatusOr<SwapAccept> ParseSwapAccept(std::string_view name) {
  if (name == "strict") return SwapAccept::kStrict;
  if (name == "nonworse") return SwapAccept::kNonWorse;
  return absl::InvalidArgumentError(
      absl::StrCat("accept: must be \"strict\" or \"nonworse\", got \"", std::string(name), "\""));
}

absl::StatusOr<SwapCost> ParseSwapCost(std::string_view name) {
  if (name == "two_row") return SwapCost::kTwoRow;
  if (name == "full_window") return SwapCost::kFullWindow;
  return absl::InvalidArgumentError(
      absl::StrCat("cost: must be \"two_row\" or \"full_window\", got \"", std::string(name), "\""));
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// (1 − pearson) / 2 from sums over m paired entries; NaN when either side is
// constant (the OFFICIAL code gets NaN there too; NaN never compares as an
// improvement, so such swaps are rejected).
double CostFromSums(double m, double r, double rr, double d, double dd, double rd) {
  const double var_r = rr - r * r / m;
  const double var_d = dd - d * d / m;
  const double den = var_r * var_d;
  if (!(den > 0)) return kNaN;
  return (1.0 - (rd - r * d / m) / std::sqrt(den)) / 2.0;
}

double WindowCost(const kernels::WindowSums& s) {
  if (s.pairs < 2) return kNaN;
  return CostFromSums(static_cast<double>(s.pairs), s.r, s.rr, s.d, s.dd, s.rd);
}

// Everything that stays fixed during a run.
struct Problem {
  int64_t units = 0;
  int64_t images = 0;
  std::vector<float> z;          // [U, images], rows z-scored / sqrt(images)
  std::vector<double> slot_xy;   // [U, 2] the fixed set of positions ("slots")
  double min_x = 0, max_x = 0, min_y = 0, max_y = 0;
  std::unique_ptr<SquareGrid> grid;
};

absl::StatusOr<std::unique_ptr<Problem>> Prepare(const at::Tensor& responses,
                                                 const at::Tensor& positions, double width_mm) {
  if (responses.dim() != 2 || responses.size(0) < 2) {
    return absl::InvalidArgumentError(
        "swapopt: responses must be a 2-d [images >= 2, units] array");
  }
  if (positions.dim() != 2 || positions.size(1) != 2 || positions.size(0) != responses.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "swapopt: positions must be [units, 2] with units = ", responses.size(1),
        " (responses columns)"));
  }
  if (responses.size(1) < 1) return absl::InvalidArgumentError("swapopt: no units");
  if (!at::isFloatingType(responses.scalar_type()) || !at::isFloatingType(positions.scalar_type())) {
    return absl::InvalidArgumentError("swapopt: responses and positions must be floating point");
  }
  if (!(width_mm > 0) || !std::isfinite(width_mm)) {
    return absl::InvalidArgumentError(absl::StrCat("swapopt: width_mm must be > 0, got ", width_mm));
  }
  at::Tensor f = responses.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor p = positions.to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(f).all().item<bool>()) {
    return absl::InvalidArgumentError("swapopt: responses contain NaN or Inf");
  }
  if (!at::isfinite(p).all().item<bool>()) {
    return absl::InvalidArgumentError("swapopt: positions contain NaN or Inf");
  }
  auto prob = std::make_unique<Problem>();
  const int64_t n_img = f.size(0), units = f.size(1);
  prob->units = units;
  prob->images = n_img;
  const float* fp = f.data_ptr<float>();
  std::vector<double> mean(units, 0.0), sq(units, 0.0);
  for (int64_t i = 0; i < n_img; ++i) {
    const float* row = fp + i * units;
    for (int64_t u = 0; u < units; ++u) mean[u] += row[u];
  }
  for (int64_t u = 0; u < units; ++u) mean[u] /= static_cast<double>(n_img);
  for (int64_t i = 0; i < n_img; ++i) {
    const float* row = fp + i * units;
    for (int64_t u = 0; u < units; ++u) {
      const double c = row[u] - mean[u];
      sq[u] += c * c;
    }
  }
  // z = (f − mean) / (std · sqrt(images)) so that z_a · z_b is Pearson's r.
  // A constant unit gets z = 0: its correlations (and self-correlation) are
  // 0, which is numpy's NaN → 0.
  std::vector<float> scale(units);
  for (int64_t u = 0; u < units; ++u) {
    const double sd = std::sqrt(sq[u] / static_cast<double>(n_img));
    const bool constant = !(sd > 1e-7 * std::max(1.0, std::fabs(mean[u])));
    scale[u] = constant ? 0.0f : static_cast<float>(1.0 / (sd * std::sqrt(double(n_img))));
  }
  prob->z.resize(static_cast<size_t>(units) * n_img);
  constexpr int64_t kBlock = 64;  // transpose in tiles for cache locality
  for (int64_t i0 = 0; i0 < n_img; i0 += kBlock) {
    const int64_t i1 = std::min(n_img, i0 + kBlock);
    for (int64_t u0 = 0; u0 < units; u0 += kBlock) {
      const int64_t u1 = std::min(units, u0 + kBlock);
      for (int64_t i = i0; i < i1; ++i) {
        const float* row = fp + i * units;
        for (int64_t u = u0; u < u1; ++u) {
          prob->z[u * n_img + i] = static_cast<float>((row[u] - mean[u]) * scale[u]);
        }
      }
    }
  }
  const double* xy = p.data_ptr<double>();
  prob->slot_xy.assign(xy, xy + 2 * units);
  prob->min_x = prob->max_x = xy[0];
  prob->min_y = prob->max_y = xy[1];
  for (int64_t u = 1; u < units; ++u) {
    prob->min_x = std::min(prob->min_x, xy[2 * u]);
    prob->max_x = std::max(prob->max_x, xy[2 * u]);
    prob->min_y = std::min(prob->min_y, xy[2 * u + 1]);
    prob->max_y = std::max(prob->max_y, xy[2 * u + 1]);
  }
  prob->grid = std::make_unique<SquareGrid>(xy, units, prob->min_x, prob->min_y, width_mm);
  return prob;
}

struct Square {
  double x0 = 0, y0 = 0;
};

bool Overlaps(const Square& a, const Square& b, double w) {
  return a.x0 <= b.x0 + w && b.x0 <= a.x0 + w && a.y0 <= b.y0 + w && b.y0 <= a.y0 + w;
}

// Window i's square: the first two draws of its RNG stream.
Square SampleSquare(const Problem& prob, double w, SplitMix64& rng) {
  Square s;
  const double span_x = prob.max_x - w - prob.min_x;
  const double span_y = prob.max_y - w - prob.min_y;
  const double ux = rng.Uniform(), uy = rng.Uniform();
  s.x0 = prob.min_x + (span_x > 0 ? ux * span_x : 0.0);
  s.y0 = prob.min_y + (span_y > 0 ? uy * span_y : 0.0);
  return s;
}

struct Scratch {
  std::vector<int64_t> slots, units;
  std::vector<float> zbuf, r, qx, qy;
  std::vector<double> row_sum, row_sq;
};

struct WindowParams {
  const Problem* prob;
  const SwapOptOptions* options;
  bool swap;  // false: only measure the cost
};

// Processes window `index`. Reads and writes unit_of_slot only for the slots
// inside the window's square.
SwapWindowRecord ProcessWindow(int64_t index, const WindowParams& wp,
                               std::vector<int64_t>& unit_of_slot, Scratch& sc) {
  const Problem& prob = *wp.prob;
  const SwapOptOptions& opt = *wp.options;
  const double w = opt.width_mm;
  SplitMix64 rng(MixSeed(opt.seed, static_cast<uint64_t>(index)));
  const Square sq = SampleSquare(prob, w, rng);
  SwapWindowRecord rec;
  rec.index = index;
  sc.slots.clear();
  prob.grid->Query(sq.x0, sq.y0, w, &sc.slots);
  int64_t n = static_cast<int64_t>(sc.slots.size());
  rec.units = n;
  if (n < opt.min_units || n < 2) {
    rec.cost_before = rec.cost_after = kNaN;
    return rec;
  }
  if (n > opt.max_units) {
    for (int64_t i = 0; i < opt.max_units; ++i) {
      const int64_t j = i + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n - i)));
      std::swap(sc.slots[i], sc.slots[j]);
    }
    n = opt.max_units;
    sc.slots.resize(n);
    rec.units = n;
  }
  const int64_t len = prob.images;
  sc.units.resize(n);
  sc.zbuf.resize(static_cast<size_t>(n) * len);
  sc.qx.resize(n);
  sc.qy.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t s = sc.slots[k];
    const int64_t u = unit_of_slot[s];
    sc.units[k] = u;
    std::copy_n(prob.z.data() + u * len, len, sc.zbuf.data() + k * len);
    sc.qx[k] = static_cast<float>(prob.slot_xy[2 * s]);
    sc.qy[k] = static_cast<float>(prob.slot_xy[2 * s + 1]);
  }
  sc.r.resize(static_cast<size_t>(n) * n);
  kernels::GramMatrix(sc.zbuf.data(), n, len, sc.r.data());
  const kernels::WindowSums before = kernels::ComputeWindowSums(sc.qx.data(), sc.qy.data(), n,
                                                                sc.r.data());
  rec.cost_before = WindowCost(before);
  if (!wp.swap) {
    rec.cost_after = rec.cost_before;
    return rec;
  }
  // Per-row sums of R for the two-row cost (constant: R never changes).
  sc.row_sum.assign(n, 0.0);
  sc.row_sq.assign(n, 0.0);
  for (int64_t a = 0; a < n; ++a) {
    const float* ra = sc.r.data() + a * n;
    double s = 0, ss = 0;
    for (int64_t j = 0; j < n; ++j) {
      s += ra[j];
      ss += static_cast<double>(ra[j]) * ra[j];
    }
    sc.row_sum[a] = s;
    sc.row_sq[a] = ss;
  }
  double window_rd = before.rd;  // running Σ r·d over lower-triangle pairs
  const double m2 = 2.0 * static_cast<double>(n);
  for (int64_t t = 0; t < opt.swaps_per_window; ++t) {
    const int64_t a = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n)));
    int64_t b = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n - 1)));
    if (b >= a) ++b;
    const kernels::SwapSums s = kernels::ComputeSwapSums(
        sc.qx.data(), sc.qy.data(), n, a, b, sc.r.data() + a * n, sc.r.data() + b * n);
    double cost_before, cost_after;
    if (opt.cost == SwapCost::kTwoRow) {
      const double r = sc.row_sum[a] + sc.row_sum[b];
      const double rr = sc.row_sq[a] + sc.row_sq[b];
      // Exchanging q_a and q_b permutes the distances of the two rows, so
      // Σd and Σd² are unchanged; only Σ r·d moves, by `delta`.
      cost_before = CostFromSums(m2, r, rr, s.d, s.dd, s.rd_before);
      cost_after = CostFromSums(m2, r, rr, s.d, s.dd, s.rd_before + s.delta);
    } else {
      const double m = static_cast<double>(before.pairs);
      cost_before = CostFromSums(m, before.r, before.rr, before.d, before.dd, window_rd);
      cost_after = CostFromSums(m, before.r, before.rr, before.d, before.dd, window_rd + s.delta);
    }
    const bool accept = opt.accept == SwapAccept::kStrict ? cost_after < cost_before
                                                          : cost_after <= cost_before;
    if (!accept) continue;
    std::swap(sc.qx[a], sc.qx[b]);
    std::swap(sc.qy[a], sc.qy[b]);
    std::swap(sc.slots[a], sc.slots[b]);
    window_rd += s.delta;
    ++rec.accepted;
  }
  for (int64_t k = 0; k < n; ++k) unit_of_slot[sc.slots[k]] = sc.units[k];
  rec.cost_after = WindowCost(
      kernels::ComputeWindowSums(sc.qx.data(), sc.qy.data(), n, sc.r.data()));
  return rec;
}

// Runs windows [0, total) in index order on `threads` workers (the calling
// thread included), never running two windows with intersecting squares at
// the same time and never starting a window before an earlier intersecting
// one finished — so the outcome equals the sequential one.
absl::Status RunWindows(const WindowParams& wp, int64_t total, int threads,
                        std::vector<int64_t>& unit_of_slot,
                        std::vector<SwapWindowRecord>& records) {
  const SwapOptOptions& opt = *wp.options;
  records.assign(total, SwapWindowRecord{});
  const int64_t report_every = std::max<int64_t>(1, total / 200);
  if (threads <= 1 || total < 2) {
    Scratch sc;
    for (int64_t i = 0; i < total; ++i) {
      if (opt.cancelled && opt.cancelled()) return absl::CancelledError("swapopt cancelled");
      records[i] = ProcessWindow(i, wp, unit_of_slot, sc);
      if (opt.progress && ((i + 1) % report_every == 0 || i + 1 == total)) {
        opt.progress(i + 1, total);
      }
    }
    return absl::OkStatus();
  }
  std::mutex mu;
  std::condition_variable cv;
  int64_t next = 0;
  int64_t done = 0;
  bool stop = false;
  struct Claim {
    int64_t index = -1;  // -1: this worker holds no window
    Square square;
  };
  std::vector<Claim> claims(threads);
  auto square_of = [&](int64_t i) {
    SplitMix64 rng(MixSeed(opt.seed, static_cast<uint64_t>(i)));
    return SampleSquare(*wp.prob, opt.width_mm, rng);
  };
  auto worker = [&](int id, bool caller) {
    Scratch sc;
    std::unique_lock<std::mutex> lock(mu);
    int64_t last_report = 0;
    while (true) {
      if (caller) {
        if (opt.progress && done - last_report >= report_every) {
          last_report = done;
          const int64_t d = done;
          lock.unlock();
          opt.progress(d, total);
          lock.lock();
        }
        if (opt.cancelled) {
          lock.unlock();
          const bool c = opt.cancelled();
          lock.lock();
          if (c) stop = true;
        }
      }
      if (stop || next >= total) break;
      const int64_t i = next++;
      // Claim before waiting so later windows see this one.
      claims[id].index = i;
      claims[id].square = square_of(i);
      cv.wait(lock, [&] {
        for (int k = 0; k < threads; ++k) {
          if (k != id && claims[k].index >= 0 && claims[k].index < i &&
              Overlaps(claims[k].square, claims[id].square, opt.width_mm)) {
            return false;
          }
        }
        return true;
      });
      lock.unlock();
      records[i] = ProcessWindow(i, wp, unit_of_slot, sc);
      lock.lock();
      claims[id].index = -1;
      ++done;
      cv.notify_all();
    }
    claims[id].index = -1;
    cv.notify_all();
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(worker, k, false);
  worker(0, true);
  for (auto& t : pool) t.join();
  if (stop) return absl::CancelledError("swapopt cancelled");
  if (opt.progress) opt.progress(total, total);
  return absl::OkStatus();
}

absl::Status ValidateOptions(const SwapOptOptions& o) {
  if (o.num_windows < 0) return absl::InvalidArgumentError("swapopt: neighborhoods must be >= 0");
  if (o.swaps_per_window < 0) {
    return absl::InvalidArgumentError("swapopt: swaps_per_neighborhood must be >= 0");
  }
  if (o.max_units < 2) return absl::InvalidArgumentError("swapopt: max_units must be >= 2");
  if (o.min_units < 2 || o.min_units > o.max_units) {
    return absl::InvalidArgumentError("swapopt: min_units must be in [2, max_units]");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SwapOptResult> RunSwapOpt(const at::Tensor& responses, const at::Tensor& positions,
                                         const SwapOptOptions& options) {
  if (auto s = ValidateOptions(options); !s.ok()) return s;
  auto prob_or = Prepare(responses, positions, options.width_mm);
  if (!prob_or.ok()) return prob_or.status();
  const Problem& prob = **prob_or;
  std::vector<int64_t> unit_of_slot(prob.units);
  for (int64_t u = 0; u < prob.units; ++u) unit_of_slot[u] = u;
  std::vector<SwapWindowRecord> records;
  WindowParams wp{&prob, &options, /*swap=*/true};
  if (auto s = RunWindows(wp, options.num_windows, std::max(1, options.threads), unit_of_slot,
                          records);
      !s.ok()) {
    return s;
  }
  SwapOptResult result;
  at::Tensor out = at::empty({prob.units, 2}, at::kFloat);
  float* op = out.data_ptr<float>();
  for (int64_t s = 0; s < prob.units; ++s) {
    const int64_t u = unit_of_slot[s];
    op[2 * u] = static_cast<float>(prob.slot_xy[2 * s]);
    op[2 * u + 1] = static_cast<float>(prob.slot_xy[2 * s + 1]);
  }
  result.positions = out;
  double sum_before = 0, sum_after = 0;
  int64_t costed = 0;
  for (const auto& rec : records) {
    if (rec.units < options.min_units || rec.units < 2) continue;
    ++result.windows_used;
    result.swaps_attempted += options.swaps_per_window;
    result.swaps_accepted += rec.accepted;
    if (std::isfinite(rec.cost_before) && std::isfinite(rec.cost_after)) {
      sum_before += rec.cost_before;
      sum_after += rec.cost_after;
      ++costed;
    }
    if (options.record_windows) result.windows.push_back(rec);
  }
  result.mean_cost_before = costed ? sum_before / static_cast<double>(costed) : kNaN;
  result.mean_cost_after = costed ? sum_after / static_cast<double>(costed) : kNaN;
  return result;
}

absl::StatusOr<double> MeanLocalCost(const at::Tensor& responses, const at::Tensor& positions,
                                     double width_mm, int64_t num_windows, int64_t max_units,
                                     int64_t min_units, uint64_t seed) {
  SwapOptOptions options;
  options.num_windows = num_windows;
  options.swaps_per_window = 0;
  options.width_mm = width_mm;
  options.max_units = max_units;
  options.min_units = min_units;
  options.seed = seed;
  if (auto s = ValidateOptions(options); !s.ok()) return s;
  auto prob_or = Prepare(responses, positions, width_mm);
  if (!prob_or.ok()) return prob_or.status();
  const Problem& prob = **prob_or;
  std::vector<int64_t> unit_of_slot(prob.units);
  for (int64_t u = 0; u < prob.units; ++u) unit_of_slot[u] = u;
  WindowParams wp{&prob, &options, /*swap=*/false};
  Scratch sc;
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < num_windows; ++i) {
    const SwapWindowRecord rec = ProcessWindow(i, wp, unit_of_slot, sc);
    if (std::isfinite(rec.cost_before)) {
      sum += rec.cost_before;
      ++count;
    }
  }
  return count ? sum / static_cast<double>(count) : kNaN;
}

}  // namespace topolab::science
