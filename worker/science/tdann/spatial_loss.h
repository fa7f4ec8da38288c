// TDANN spatial losses (spec tdann.md §4): make units that sit close on the
// cortical sheet respond alike.
//
// For K units of one neighbourhood with responses X [B, K] (B images) and
// positions P [K, 2] mm:
//   r_ij = Pearson correlation of units i, j across the B rows (a unit whose
//          std is zero gets std := 1, so its correlations are 0; clamped to
//          [-1, 1]);
//   D_ij = 1 / (d_ij + 1), d_ij the Euclidean distance in mm;
//   keep the strictly-lower-triangle pairs (i > j) of both as vectors r, D;
//   SL_Rel = (1 − corr(r, D)) / 2   (OFFICIAL; `rel_form: full` → 1 − corr)
//   SL_Abs = mean_pairs |r − D|     (Lee et al. "old version")
// Gradients flow into X only: positions are treated as constants.
//
// All functions are pure and thread-safe. Shape errors are programmer errors
// (TORCH_CHECK → c10::Error).
#ifndef TOPOLAB_WORKER_SCIENCE_TDANN_SPATIAL_LOSS_H_
#define TOPOLAB_WORKER_SCIENCE_TDANN_SPATIAL_LOSS_H_

#include <cstdint>
#include <string_view>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"

namespace topolab::science {

enum class SpatialLossType { kRelative, kAbsolute };
enum class RelativeForm {
  kHalf,  // (1 − r) / 2, OFFICIAL default
  kFull,  // 1 − r, paper equation / REPRO
};

struct SpatialLossOptions {
  SpatialLossType type = SpatialLossType::kRelative;
  RelativeForm rel_form = RelativeForm::kHalf;
};

// "rel" | "abs" and "half" | "full". InvalidArgument otherwise.
absl::StatusOr<SpatialLossType> ParseSpatialLossType(std::string_view name);
absl::StatusOr<RelativeForm> ParseRelativeForm(std::string_view name);

// r: [K, K] Pearson correlations of the columns of `responses` [B, K] with the
// zero-std rule above, clamped to [-1, 1]. Differentiable. A column counts as
// constant when its std is <= 1e-7·max(1, |mean|) (float rounding of a mean of
// equal values); exact zeros (dead ReLU units) are the usual case.
// REQUIRES: responses is 2-D floating point with B >= 1.
at::Tensor ResponseCorrelation(const at::Tensor& responses);

// D: [K, K] with D_ij = 1 / (‖p_i − p_j‖ + 1). Not differentiable (detached).
// REQUIRES: positions is [K, 2].
at::Tensor DistanceSimilarity(const at::Tensor& positions);

// The strictly-lower-triangle entries (i > j) of a square matrix, row-major
// order: (1,0), (2,0), (2,1), (3,0), ...
at::Tensor LowerTriangle(const at::Tensor& square);

// Pearson correlation of two equal-length vectors; 0 when either is constant
// (keeps gradients finite instead of NaN).
at::Tensor VectorCorrelation(const at::Tensor& a, const at::Tensor& b);

// SL_Rel and SL_Abs for one neighbourhood. responses [B, K] (any dtype/device;
// computed in float32 or wider), positions [K, 2] on any device.
// REQUIRES: K >= 2. Returns a 0-dim tensor on responses' device.
at::Tensor SpatialLossRel(const at::Tensor& responses, const at::Tensor& positions,
                          RelativeForm form = RelativeForm::kHalf);
at::Tensor SpatialLossAbs(const at::Tensor& responses, const at::Tensor& positions);
at::Tensor SpatialLoss(const at::Tensor& responses, const at::Tensor& positions,
                       const SpatialLossOptions& options);

// The per-step loss of one layer: draws `count` neighbourhoods uniformly (with
// replacement) from `pool` [P, K] using `gen`, gathers those units from
// `block_output` [B, ...] flattened to [B, U] (unit index c·H·W + h·W + w),
// and returns the mean of their spatial losses.
// REQUIRES: pool has P >= 1 rows of K >= 2 valid unit indices; positions is
// [U, 2]; count >= 1.
at::Tensor LayerSpatialLoss(const at::Tensor& block_output, const at::Tensor& positions,
                            const at::Tensor& pool, int64_t count, at::Generator gen,
                            const SpatialLossOptions& options);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_TDANN_SPATIAL_LOSS_H_
