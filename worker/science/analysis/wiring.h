// Wiring length (tdann.md §7.7): how far axons would have to run between the
// active clusters of a source layer and those of a target layer. Built from
// two primitives written here: 2-D k-means (k-means++ seeding, Lloyd
// iterations, several restarts) and the Hungarian algorithm (optimal
// assignment, O(n^2 m)).
//
// Pure functions, deterministic for a given seed. No LibTorch in the
// primitives; WiringLength takes tensors for convenience.
#ifndef TOPOLAB_WORKER_SCIENCE_ANALYSIS_WIRING_H_
#define TOPOLAB_WORKER_SCIENCE_ANALYSIS_WIRING_H_

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

namespace topolab::science {

using Point2 = std::array<double, 2>;

struct KMeansResult {
  std::vector<Point2> centroids;   // k centroids
  std::vector<int> assignment;     // cluster of each point
  double inertia = 0;              // sum of squared distances to the assigned centroid
};

// Best of `restarts` runs (lowest inertia). REQUIRES: 1 <= k <= points.size().
KMeansResult KMeans2d(const std::vector<Point2>& points, int k, uint64_t seed,
                      int restarts = 4, int max_iterations = 100);

// Minimum-cost assignment of each row to a distinct column of cost[n][m]
// (n <= m; rows longer than columns are handled by transposing). Returns the
// total cost; `row_to_col` (if not null) gets the column of every row
// (or, when n > m, -1 for unassigned rows).
double HungarianAssign(const std::vector<std::vector<double>>& cost,
                       std::vector<int>* row_to_col = nullptr);

struct WiringOptions {
  double percentile = 95;          // active = response > this percentile (within the window)
  double inertia_radius_mm = 0.9;  // k: smallest with inertia <= n_active * radius^2
  int max_k = 99;
  double window_mm = 3.5;          // square windows; <= 0 = the whole sheet
  int windows = 20;                // random windows per pattern (1 if whole sheet)
  // Target sheet is shifted by this much (one sheet width) up/down/left/
  // right; the length is averaged over the 4 directions. <= 0: the extent
  // of the target positions.
  double shift_mm = 0;
  uint64_t seed = 0;
};

// Wiring length of one source/target pair of active point sets (mm):
// choose k on the source, cluster the target with the same k (capped by its
// size), shift the target centroids by +-shift in x and y, and average the
// Hungarian assignment cost (sum of centroid distances) over the 4 shifts.
// Returns NaN if either set is empty.
double WiringLengthForPoints(const std::vector<Point2>& source,
                             const std::vector<Point2>& target, const WiringOptions& options,
                             uint64_t seed);

struct WiringResult {
  double mean = 0;              // over every (pattern, window) sample with a value
  std::vector<double> samples;  // one per (pattern, window), NaN where a set was empty
};

// source_responses [P, Us], source_positions [Us, 2], target likewise; P
// stimulus patterns (e.g. 50 natural images). For every pattern and window,
// units inside the window whose response exceeds the window's percentile
// are the active set of each layer.
WiringResult WiringLength(const at::Tensor& source_responses, const at::Tensor& source_positions,
                          const at::Tensor& target_responses, const at::Tensor& target_positions,
                          const WiringOptions& options);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_ANALYSIS_WIRING_H_
