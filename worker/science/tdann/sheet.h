// The TDANN cortical sheet (spec tdann.md §2): where every unit of a spatial
// layer sits, in millimetres, before any optimisation, and the pool of square
// "training neighbourhoods" the spatial loss samples from.
//
// A layer with feature maps of C channels on an N×N grid gets a square sheet
// of side S mm. Each grid location (h, w) owns a square hypercolumn of width
// wdt = S / (N − N·ov + ov), where ov = min(0.1·56/N, 1) is the receptive
// field overlap; hypercolumn centres ("anchors") are linspace(wdt/2,
// S − wdt/2, N) per axis (x from w, y from h). Every unit gets an independent
// uniform offset in [−wdt/2, wdt/2]² around its anchor, then N(0, σ²) jitter
// (σ = 0.3 mm) after which each axis is affinely mapped back onto its
// pre-jitter range. Units are numbered c·H·W + h·W + w (tensor.flatten(1)).
//
// Everything here is deterministic for a given seed and thread-safe (no
// shared state). Functions taking user input return absl::Status; tensor
// shape mistakes by callers are programmer errors (TORCH_CHECK).
#ifndef TOPOLAB_WORKER_SCIENCE_TDANN_SHEET_H_
#define TOPOLAB_WORKER_SCIENCE_TDANN_SHEET_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"

namespace topolab::science {

// Which sheet size table to use (spec §2 table).
enum class SheetScale {
  kHuman,  // paper / OFFICIAL constants (default): V1 side 36.75 mm, ...
  kTrain,  // the smaller sizes the released models were trained with
           // (human side / factor); analyses multiply by the factor.
};

// Parses "human" | "train". InvalidArgument otherwise.
absl::StatusOr<SheetScale> ParseSheetScale(std::string_view name);

// One row of the spec §2 table.
struct CorticalRegion {
  std::string name;       // "retina", "V1", "V2", "V4", "VTC"
  double side_mm_human;   // sheet side at human scale
  double factor;          // human side / train side
  double SideMm(SheetScale scale) const {
    return scale == SheetScale::kHuman ? side_mm_human : side_mm_human / factor;
  }
};

// The cortical region of a ResNet-18 block name: layer1.x → retina,
// layer2.x → V1, layer3.0 → V2, layer3.1 → V4, layer4.x → VTC.
// Returns NotFound for any other name.
absl::StatusOr<CorticalRegion> RegionForLayer(std::string_view layer_name);

// RF overlap of a layer with an N×N feature map: min(0.1·56/N, 1).
// REQUIRES: n >= 1.
double RfOverlap(int64_t n);

// Hypercolumn (= neighbourhood) width: side / (N − N·ov + ov).
// REQUIRES: n >= 1, 0 <= ov <= 1.
double HypercolumnWidth(double side_mm, int64_t n, double overlap);

struct SheetOptions {
  double side_mm = 0;          // sheet side S; must be > 0
  double rf_overlap = -1;      // < 0: RfOverlap(N); else used as given (<= 1)
  double jitter_sd_mm = 0.3;   // 0 disables the jitter step
  uint64_t seed = 0;
};

struct CorticalSheet {
  at::Tensor positions;        // [C·H·W, 2] float32 (x, y) in mm
  int64_t channels = 0, height = 0, width = 0;
  double side_mm = 0;
  double rf_overlap = 0;
  double hypercolumn_width_mm = 0;   // == neighbourhood width of this layer
  int64_t num_units() const { return channels * height * width; }
};

// Builds the initial retinotopic positions of one layer (spec §2 steps 1–5).
// Returns InvalidArgument for non-positive sizes, height != width (the sheet
// is square and the spec defines it for N×N maps), side <= 0 or overlap > 1.
absl::StatusOr<CorticalSheet> BuildCorticalSheet(int64_t channels, int64_t height,
                                                 int64_t width, const SheetOptions& options);

// Settings of the training-neighbourhood pool (spec §2, "Training
// neighborhoods"). Defaults are OFFICIAL.
struct NeighborhoodPoolOptions {
  int64_t num_windows = 20000;   // square windows drawn
  double percentile = 5.0;       // size cutoff percentile of member counts
  int64_t min_size = 25;         // floor of the cutoff
  int64_t max_size = 500;        // cap of K
  uint64_t seed = 0;
};

// Draws the pool: `num_windows` closed squares of side `width_mm` with centres
// uniform in [min_x + r, max_x − r] × [min_y + r, max_y − r] (r = width/2; an
// axis narrower than the window uses its midpoint), counts members, sets
// K = min(max(floor(percentile of counts), min_size), max_size) — and, so that
// tiny layers still get a pool, K <= number of units — drops windows with
// fewer than K members and keeps exactly K members of each survivor, drawn
// without replacement (sorted ascending within a row).
// Returns int64 [num_kept, K]; num_kept may be 0 if no window holds K units.
// REQUIRES: positions is [U, 2] floating point with U >= 1; width_mm > 0.
at::Tensor BuildNeighborhoodPool(const at::Tensor& positions, double width_mm,
                                 const NeighborhoodPoolOptions& options);

// The neighbourhood width used for a layer's pool and SwapOpt windows, given
// its positions tensor is a fresh sheet: the hypercolumn width. Convenience
// for jobs that only have (layer name, C, N, scale).
struct LayerSheetSpec {
  std::string layer;           // e.g. "layer2.0"
  int64_t channels = 0, size = 0;   // C and N (square maps)
  SheetScale scale = SheetScale::kHuman;
  double side_mm = 0;          // > 0 overrides the region table
};

// side_mm from the table (or the override) and the resulting widths.
// NotFound for a layer outside the table when no side_mm override is given.
absl::StatusOr<CorticalSheet> BuildLayerSheet(const LayerSheetSpec& spec, double jitter_sd_mm,
                                              uint64_t seed);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_TDANN_SHEET_H_
