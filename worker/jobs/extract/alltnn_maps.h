// The `alltnn_maps` extract analysis (extra_analysis.h): the All-TNN maps of
// models.md §1.4 drawn on each layer's 2-D sheet (alltnn.h: unit (ch, h, w)
// sits at sheet row h*c0 + ch/c1, column w*c1 + ch%c1):
//
//  * orientation: full-field gratings (AllTnnGratingSet at the job's image
//    size) streamed in batches; per grating row the mean sheet response is
//    accumulated (ConditionAccumulator, one condition per row), never the
//    activations themselves; then max over phase, doubled-circle preference,
//    spread, 9x9 window entropy, cluster radius, FFT radial profile;
//  * category: d' of every category against the pooled others per sheet
//    unit (streamed first and second moments) on the embedded Fashion-MNIST
//    test set (or an image folder), winner-take-all map, selective fraction;
//  * energy: activation L1 and transmission energy per layer on test images,
//    box-smoothed maps, the stacked map and its disc radial profile.
//
// Files go under out_dir/alltnn_maps/ (README "All-TNN" lists each one);
// the returned JSON lands in metrics.json under analyses.alltnn_maps.
#ifndef TOPOLAB_WORKER_JOBS_EXTRACT_ALLTNN_MAPS_H_
#define TOPOLAB_WORKER_JOBS_EXTRACT_ALLTNN_MAPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/jobs/extract/extra_analysis.h"

namespace topolab::worker {

// The `alltnn_maps:` object of the extract spec (schema:
// proto/config/schema_extract_analyses.cc; defaults = models.md §1.4).
struct AllTnnMapsOptions {
  bool orientation = true;                   // orientation maps
  std::vector<std::string> layers;           // orientation layers; empty = every layer
  std::vector<double> wavelengths = {3.0};   // grating wavelengths in px
  int64_t orientations = 8;                  // theta_a = 180 deg * a / orientations
  int64_t window_half_width = 4;             // entropy window (2*4+1)^2

  bool category = true;                      // category d' / winner-take-all maps
  std::vector<std::string> category_layers;  // empty = the last layer
  std::string categories_path;               // empty = the stage's categories_path, else Fashion-MNIST test
  int64_t per_category = 100;                // images per category (0 = all)
  double dprime_threshold = 0.85;            // "selective" = d' above this

  bool energy = true;                        // activation L1 + transmission energy
  int64_t images = 100;                      // test images for the energy maps
  int64_t smooth = 8;                        // box filter side for energy maps (wrapping)
  std::vector<std::string> stack_layers;     // empty = every layer but the last (§1.4: 0-4 of 6);
                                             // a one-layer net stacks its only layer

  int64_t png_side = 320;                    // smallest side of a drawn sheet, px
};

// Reads `obj` (the spec's alltnn_maps object; null/absent = defaults).
// InvalidArgument naming the key ("alltnn_maps.wavelengths: ...") for a
// wrong type or value or an unknown key. Layer names are checked against the
// model in RunAllTnnMaps.
absl::StatusOr<AllTnnMapsOptions> ParseAllTnnMapsOptions(const nlohmann::json& obj);

// Runs the three analyses on in.net. Returns FailedPrecondition naming the
// family when the model is not family "alltnn", InvalidArgument for bad
// options or unknown layers, the dataset's status (NotFound, DataLoss, ...)
// prefixed with the option that chose it when test images cannot be read,
// Cancelled when the job is cancelled. Writes only under out_dir/alltnn_maps/.
absl::StatusOr<nlohmann::json> RunAllTnnMaps(const ExtraAnalysisInput& in);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_EXTRACT_ALLTNN_MAPS_H_
