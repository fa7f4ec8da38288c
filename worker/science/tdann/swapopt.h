// SwapOpt (spec tdann.md §3): greedy local swaps of unit positions so that
// units near each other on the cortical sheet have correlated responses.
//
// Input: responses F [images, U] of a trained network (float32) and initial
// positions P [U, 2] (mm). Response correlations never change; only which
// unit sits at which position does, so the set of occupied positions is fixed
// and the output is a permutation of the input rows.
//
// For each of `num_windows` windows (OFFICIAL default 100,000):
//   x0 ~ U[min_x, max_x − w], y0 ~ U[min_y, max_y − w]   (w = width_mm)
//   members = units with position in the closed square [x0, x0+w]×[y0, y0+w]
//   skip if fewer than `min_units` (5); keep a random subset of `max_units`
//   (500) if more; R = Pearson matrix of their responses (NaN → 0, so a
//   constant unit has an all-zero row, diagonal included)
//   repeat `swaps_per_window` (500) times: pick two distinct members a, b;
//     cost before/after exchanging their positions; undo unless the cost
//     strictly fell (`accept: nonworse` also keeps equal costs).
// Costs: `two_row` (OFFICIAL) = (1 − pearson(vec(R[a|b, :]), vec(1/(D[a|b, :]+1))))/2
// over both rows (2n entries, self pairs included); `full_window` (REPRO) =
// the same over all strictly-lower-triangle pairs of the window. Swap costs are
// updated in O(n) per attempt from running sums (exact up to rounding).
//
// Parallelism and determinism: window i uses its own RNG stream seeded from
// (seed, i). Windows are processed in index order by `threads` workers; a
// window waits for every earlier window whose square intersects its own, so
// windows that run concurrently touch disjoint units and the result is
// identical for any thread count (bit-for-bit on a given CPU).
//
// Thread-safe: RunSwapOpt has no shared state; callbacks are invoked only on
// the calling thread.
#ifndef TOPOLAB_WORKER_SCIENCE_TDANN_SWAPOPT_H_
#define TOPOLAB_WORKER_SCIENCE_TDANN_SWAPOPT_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"

namespace topolab::science {

enum class SwapAccept { kStrict, kNonWorse };
enum class SwapCost { kTwoRow, kFullWindow };

// "strict" | "nonworse"; "two_row" | "full_window". InvalidArgument otherwise.
absl::StatusOr<SwapAccept> ParseSwapAccept(std::string_view name);
absl::StatusOr<SwapCost> ParseSwapCost(std::string_view name);

struct SwapOptOptions {
  int64_t num_windows = 100000;
  int64_t swaps_per_window = 500;
  double width_mm = 0;          // window side; the layer's neighbourhood width. > 0
  int64_t max_units = 500;      // random subset above this
  int64_t min_units = 5;        // windows with fewer members are skipped
  SwapAccept accept = SwapAccept::kStrict;
  SwapCost cost = SwapCost::kTwoRow;
  uint64_t seed = 0;
  int threads = 1;              // worker threads (the calling thread is one)
  bool record_windows = false;  // fill SwapOptResult::windows
  // Called on the calling thread between windows, at most ~200 times per run,
  // with the number of windows finished so far.
  std::function<void(int64_t done, int64_t total)> progress;
  // Polled on the calling thread between windows; true stops the run
  // (RunSwapOpt then returns CancelledError).
  std::function<bool()> cancelled;
};

// Per-window record (when record_windows): full-window cost
// (1 − corr(r, D))/2 over the window's lower-triangle pairs before and after
// its swaps, and how many swaps were kept.
struct SwapWindowRecord {
  int64_t index = 0;
  int64_t units = 0;
  int64_t accepted = 0;
  double cost_before = 0, cost_after = 0;
};

struct SwapOptResult {
  at::Tensor positions;           // [U, 2] float32: a row permutation of the input
  int64_t windows_used = 0;       // windows with >= min_units members
  int64_t swaps_attempted = 0;
  int64_t swaps_accepted = 0;
  // Mean over used windows of the full-window cost before / after that
  // window's swaps (the "mean local cost").
  double mean_cost_before = 0, mean_cost_after = 0;
  std::vector<SwapWindowRecord> windows;
};

// Runs SwapOpt. Returns InvalidArgument for mismatched shapes (responses must
// be [images >= 2, U], positions [U, 2]), non-finite values or bad options;
// CancelledError when `cancelled` returned true.
absl::StatusOr<SwapOptResult> RunSwapOpt(const at::Tensor& responses, const at::Tensor& positions,
                                         const SwapOptOptions& options);

// Mean full-window cost (1 − corr(r, D))/2 over `num_windows` random windows
// of side width_mm (same sampling and subset rule as RunSwapOpt, windows with
// fewer than min_units members skipped). Use it to compare layouts on the same
// windows: the same seed gives the same squares. Returns NaN when no window
// had enough units. Same errors as RunSwapOpt.
absl::StatusOr<double> MeanLocalCost(const at::Tensor& responses, const at::Tensor& positions,
                                     double width_mm, int64_t num_windows, int64_t max_units,
                                     int64_t min_units, uint64_t seed);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_TDANN_SWAPOPT_H_
