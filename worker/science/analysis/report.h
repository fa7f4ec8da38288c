// The analysis "report": everything the extract and analyze jobs do after
// the streaming accumulators are filled — run the §7 analyses with one set
// of options, write per-unit .npy arrays and PNG maps into a folder, and
// return the metrics as JSON. Shared so the two jobs (and the families'
// extract paths) produce identical keys and files.
//
// Files written into `out_dir` (all optional parts are skipped when their
// inputs are missing):
//   V1 (gratings):  preferred_orientation_deg.npy, circular_variance.npy,
//                   preferred_sf_index.npy, preferred_colour_index.npy,
//                   orientation_tuning.npy [U,8], orientation_scatter.png,
//                   orientation_map.png (smoothed, pinwheels marked),
//                   opm_smoothness.png
//   Categories:     t_<domain>.npy, selectivity_<domain>.png (patches
//                   outlined), category_smoothness.png, rsm.npy
//
// Target `topolab_science_analysis_report` (links viz and io).
#ifndef TOPOLAB_WORKER_SCIENCE_ANALYSIS_REPORT_H_
#define TOPOLAB_WORKER_SCIENCE_ANALYSIS_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/science/analysis/accumulators.h"
#include "worker/science/analysis/maps.h"
#include "worker/science/analysis/tuning.h"
#include "worker/science/stimuli/stimuli.h"

namespace topolab::science {

// Every knob of the analyses; defaults are OFFICIAL (tdann.md §7). Parsed
// from the job spec's `analysis` object (see ParseAnalysisOptions).
struct AnalysisOptions {
  std::string preferred = "von_mises";  // "von_mises" (OFFICIAL) | "argmax"
  VonMisesOptions von_mises;
  SelectivityOptions selectivity;
  double ptp_percentile = 75;           // OPM smoothness: units above this ptp percentile
  SmoothnessOptions opm_smoothness;     // max 3.3 mm, 9 bins, 20 x 1000 units, period 180
  PinwheelOptions pinwheels;            // closed loop unless winding_loop: open
  PatchOptions patches;
  SmoothnessOptions category_smoothness;  // 60 mm, 9 bins, 25 x 500 units
  double category_min_mean_response = 0.5;  // §7.6 post-sample filter
  double display_t_threshold = 10;     // selective fraction per domain: t > this
  double position_scale = 1.0;          // positions are multiplied by this first
  bool write_pngs = true;
  uint64_t seed = 424;
  AnalysisOptions();
};

// Reads an `analysis` object; missing keys keep their defaults. Keys:
//   preferred: von_mises|argmax, winding_loop: closed|open,
//   position_scale, seed, write_pngs,
//   selectivity: {cv_threshold, min_mean, reference_median_peak},
//   opm_smoothness: {max_distance_mm, bins, repetitions, sample_size, ptp_percentile},
//   pinwheels: {window_mm, stride_mm, winding_threshold, heterogeneity_threshold,
//               min_component_pixels, column_spacing_mm},
//   patches: {grid, sigma_mm, threshold, member_radius_mm, min_member_units,
//             min_area_mm2, max_area_mm2, min_units},
//   category_smoothness: {max_distance_mm, bins, repetitions, sample_size,
//                         min_mean_response},
//   display_t_threshold.
// Returns InvalidArgument naming the key ("analysis.preferred: ...").
absl::StatusOr<AnalysisOptions> ParseAnalysisOptions(const nlohmann::json& analysis);

// V1 analyses on grating tuning (accumulated over all 640 gratings) at
// `positions` [U, 2] mm. Writes the V1 files into out_dir (created) and
// returns {"units", "preferred_method", "selective_fraction",
// "responsive_units", "selective_units", "mean_circular_variance",
// "opm_smoothness", "opm_smoothness_chance", "sf_smoothness",
// "colour_smoothness", "opm_curve": {"distance_mm", "mean", "chance"},
// "pinwheel_count", "pinwheels_positive", "pinwheels_negative",
// "pinwheel_density", "sheet_extent_mm", "winding_loop"}.
nlohmann::json RunGratingReport(const GratingTuning& tuning, const at::Tensor& positions,
                                const AnalysisOptions& options, const std::string& out_dir);

// Category analyses from a per-category ConditionAccumulator (second
// moments on) over a CategorySet's rows. Returns {"units", "domains": {d:
// {"selective_fraction", "patch_count", "patch_areas_mm2", "patch_units",
// "smoothness"}}, "patches": {d: {"count", "areas_mm2"}},
// "category_smoothness": {d: score, "mean": m}, "rsm_categories"} and writes
// the category files.
nlohmann::json RunCategoryReport(const ConditionAccumulator& by_category,
                                 const std::vector<std::string>& categories,
                                 const DomainMap& domains, const at::Tensor& positions,
                                 const AnalysisOptions& options, const std::string& out_dir);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_ANALYSIS_REPORT_H_
