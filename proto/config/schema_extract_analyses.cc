// `kind: extract` — the options objects of the model-level analyses listed in
// `analyses:` (worker/jobs/extract/extra_analysis.h). One function per
// analysis; the worker reads the same keys in worker/jobs/extract/<name>.cc.
#include <vector>

#include "proto/config/schema.h"

namespace topolab::config {

// Names accepted in `analyses:` (keep in step with extra_analysis.cc).
std::vector<std::string> ExtraAnalysisNames() {
  return {"alltnn_maps", "corruption_robustness", "encoding", "pca", "linear_probe"};
}

// One options object per analysis, named like the analysis.
std::vector<Field> ExtraAnalysisFields() {
  return {
      Object("alltnn_maps", {
          Bool("orientation").Default(true).Doc("orientation maps from full-field gratings (models.md §1.4)"),
          StringList("layers").Default(Json::array()).Doc("layers of the orientation maps (empty = every layer)"),
          NumberList("wavelengths", 2, 4096).Default(Json::array({3.0})).Length(1, 64)
              .Doc("grating wavelengths in px; round(lambda) phases each; tuning = max over phase"),
          Int("orientations").Default(8).Range(2, 180).Doc("orientations over 180 deg (= orientation bins)"),
          Int("window_half_width").Default(4).Range(0, 1024).Doc("entropy window half-width (4 = 9x9)"),
          Bool("category").Default(true).Doc("category d' and winner-take-all maps"),
          StringList("category_layers").Default(Json::array()).Doc("layers of the d' maps (empty = the last layer)"),
          String("categories_path").Default("").Path(PathCheck::kDirectory)
              .Doc("image folder, one subfolder per category; empty = the stage's categories_path, else Fashion-MNIST test"),
          Int("per_category").Default(100).Range(0, 1000000).Doc("images per category (0 = all)"),
          Double("dprime_threshold").Default(0.85).Range(-1e6, 1e6).Doc("selective fraction counts d' above this"),
          Bool("energy").Default(true).Doc("activation L1 and transmission energy maps"),
          Int("images").Default(100).Range(1, 1000000).Doc("test images (data: test split) for the energy maps"),
          Int("smooth").Default(8).Range(1, 4096).Doc("box filter side of the drawn energy maps (wrapping)"),
          StringList("stack_layers").Default(Json::array())
              .Doc("layers summed into the stacked energy map (empty = every layer but the last; a one-layer net: that layer)"),
          Int("png_side").Default(320).Range(16, 4096).Doc("smallest side of a drawn sheet, px"),
      }).Doc("All-TNN sheet maps (analyses: [alltnn_maps]): orientation, category d', energy"),
      Object("corruption_robustness", {}).Doc("corruption robustness (analyses: [corruption_robustness])"),
      Object("encoding", {}).Doc("encoding score on neural data (analyses: [encoding])"),
      Object("pca", {}).Doc("PCA spectrum (analyses: [pca])"),
      Object("linear_probe", {}).Doc("linear-probe classification (analyses: [linear_probe])"),
  };
}

}  // namespace topolab::config
