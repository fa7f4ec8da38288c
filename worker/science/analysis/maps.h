// Map-level analyses on the cortical sheet: pinwheels of the orientation
// preference map (tdann.md §7.3), category selectivity t-values (§7.4),
// category patches (§7.5) and the representational similarity matrix of
// stimulus classes.
//
// Inputs are per-unit values plus unit positions [U, 2] in mm (x, y), at the
// scale the caller wants analysed (human scale by default in the jobs).
// All functions are pure; results are float64.
#ifndef TOPOLAB_WORKER_SCIENCE_ANALYSIS_MAPS_H_
#define TOPOLAB_WORKER_SCIENCE_ANALYSIS_MAPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "worker/science/analysis/accumulators.h"

namespace topolab::science {

// A regular grid over the sheet: pixel (i, j) (row i, column j) has its
// centre at (x0 + j*dx, y0 + i*dy) mm. Row index grows with y.
struct SheetGrid {
  double x0 = 0, y0 = 0, dx = 1, dy = 1;
  int64_t rows = 0, cols = 0;
};

// ---------------------------------------------------------------------------
// Pinwheels (§7.3)
// ---------------------------------------------------------------------------

struct PinwheelOptions {
  double window_mm = 1.5;          // side of the square smoothing window
  double stride_mm = 0.45;         // step between window starts
  double winding_threshold = 0.3;  // |winding| > threshold
  double heterogeneity_threshold = 0.3;
  int64_t min_component_pixels = 2;  // 8-connected components at least this big
  // true: sum all 8 wrapped steps around the ring (NW..W and W->NW, the
  // mathematically closed loop; default). false: the OFFICIAL code's 7 steps
  // NW -> ... -> W (option `winding_loop: open`).
  bool closed_loop = true;
  double column_spacing_mm = 3.5;  // density = count / (extent / spacing)^2
};

struct SmoothedOrientationMap {
  SheetGrid grid;            // pixel centre = window centre
  at::Tensor angle_deg;      // [rows, cols] circular mean (period 180) in [0, 180); NaN if empty
  at::Tensor heterogeneity;  // [rows, cols] circular std (deg, period 180) / unit count; NaN if empty
  at::Tensor counts;         // [rows, cols] units per window
};

// Tiles square windows of side window_mm with starts min + k*stride (k =
// 0..n-1, n = floor((range - window)/stride) + 1 per axis) and takes the
// circular mean / heterogeneity of the preferred orientations inside each
// (closed square). pref_deg [U] (NaN units ignored), positions [U, 2].
SmoothedOrientationMap SmoothOrientationMap(const at::Tensor& pref_deg,
                                            const at::Tensor& positions,
                                            const PinwheelOptions& options = {});

// Winding number of an orientation map (deg, period 180) at every interior
// pixel: wrapped successive differences around the 8-neighbour ring NW, N,
// NE, E, SE, S, SW, W (closed or open loop), in degrees, / 360. A pinwheel
// gives +-0.5. Border pixels and pixels with a NaN neighbour get NaN.
at::Tensor WindingNumbers(const at::Tensor& angle_deg, bool closed_loop);

struct Pinwheel {
  double x_mm = 0, y_mm = 0;  // mean pixel centre of the component
  int sign = 0;               // +1 or -1
  int64_t pixels = 0;
};

struct PinwheelResult {
  SmoothedOrientationMap map;
  at::Tensor winding;           // [rows, cols]
  std::vector<Pinwheel> pinwheels;
  int64_t positive = 0, negative = 0, total = 0;
  double extent_mm = 0;         // max - min over all coordinates
  double density = 0;           // total / (extent / column_spacing)^2
};

PinwheelResult FindPinwheels(const at::Tensor& pref_deg, const at::Tensor& positions,
                             const PinwheelOptions& options = {});

// Labels 8-connected components of `mask` [rows, cols] bool: returns int64
// [rows, cols] with -1 outside and 0..n-1 inside, components numbered in
// row-major order of their first pixel; `sizes` gets each one's pixel count.
at::Tensor LabelComponents8(const at::Tensor& mask, std::vector<int64_t>* sizes);

// ---------------------------------------------------------------------------
// Category selectivity (§7.4)
// ---------------------------------------------------------------------------

// Welch-style t per unit from a ConditionAccumulator over categories (built
// with second_moment): t = (m_on - m_off) / sqrt(s_on^2/n_on + s_off^2/n_off),
// population variances, on = stimuli of `on_categories`, off = all others;
// t = 0 where the denominator is 0. Returns float64 [U].
at::Tensor DomainTValues(const ConditionAccumulator& categories,
                         const std::vector<int64_t>& on_categories);

// The same from the full response matrix (batch formula, for tests and
// small inputs): responses [N, U], on [N] bool.
at::Tensor WelchT(const at::Tensor& responses, const at::Tensor& on);

// ---------------------------------------------------------------------------
// Patches (§7.5)
// ---------------------------------------------------------------------------

struct PatchOptions {
  int64_t grid = 100;             // anchors per axis spanning [min, max] of all coordinates
  double sigma_mm = 2.4;          // Gaussian weights over all units
  double threshold = 2.0;         // smoothed t below this is zeroed
  double member_radius_mm = 1.0;  // unit within this distance of a component pixel
  int64_t min_member_units = 3;   // components with fewer members are not patches
  double min_area_mm2 = 100;
  double max_area_mm2 = 4500;
  int64_t min_units = 10;
};

struct Patch {
  std::vector<int64_t> units;  // member unit indices (ascending)
  int64_t pixels = 0;          // component pixels
  double area_mm2 = 0;         // pixel footprint: pixels * dx * dy
  double centroid_x = 0, centroid_y = 0;  // mean member position
  int64_t component = 0;       // label in PatchResult::components
};

struct PatchResult {
  SheetGrid grid;
  at::Tensor smoothed;    // [grid, grid] Gaussian-weighted mean of t (before thresholding)
  at::Tensor components;  // [grid, grid] int64 component labels (-1 = none)
  std::vector<Patch> patches;  // kept patches (area and unit limits passed)
  std::vector<Patch> rejected; // components that failed a limit (for diagnostics)
};

// Area is the component's pixel footprint (number of above-threshold grid
// pixels x pixel area), not the OFFICIAL alpha-shape of the member units: the
// footprint is well defined for any unit density and needs no triangulation.
// t [U], positions [U, 2].
PatchResult FindPatches(const at::Tensor& t, const at::Tensor& positions,
                        const PatchOptions& options = {});

// Gaussian-weighted mean of `values` [U] at the pixel centres of `grid`
// (weights exp(-d^2 / (2 sigma^2)) over all units). Returns [rows, cols].
at::Tensor GaussianSmoothedMap(const at::Tensor& values, const at::Tensor& positions,
                               const SheetGrid& grid, double sigma_mm);

// ---------------------------------------------------------------------------
// RSM
// ---------------------------------------------------------------------------

// Pearson correlation between the rows of class_means [K, U] (each class's
// mean response pattern over units). Rows with zero variance correlate 0
// (1 with themselves). Returns float64 [K, K].
at::Tensor ClassRsm(const at::Tensor& class_means);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_ANALYSIS_MAPS_H_
