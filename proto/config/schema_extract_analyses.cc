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
      [] {
        // worker/jobs/extract/corruption_robustness.h; names as CorruptionNames().
        const std::vector<std::string> names = {
            "brightness", "defocus_blur", "fog", "gaussian_noise", "impulse_noise",
            "motion_blur", "shot_noise", "zoom_blur", "contrast", "elastic_transform",
            "frost", "glass_blur", "jpeg_compression", "pixelate", "snow"};
        return Object("corruption_robustness", {
            Int("images").Default(1000).Range(0, 100000000)
                .Doc("test images: a seeded random subset of data's test split (0 = all)"),
            StringList("corruptions").Default(Json(names)).Allowed(names).NonEmpty()
                .Doc("corruptions of models.md 3.4 (frost uses a synthetic frost texture)"),
            IntList("severities", 1, 5).Default(Json::array({1, 2, 3, 4, 5})).Length(1, 5).Increasing()
                .Doc("severities, increasing"),
            Int("seed").Default(0).Min(0).Doc("seed of the test subset and the corruption noise"),
            Int("examples").Default(6).Range(0, 64).Doc("images per row of examples.png (0 = no picture)"),
        }).Doc("top-1 accuracy under common corruptions x severities (analyses: [corruption_robustness])");
      }(),
      // encoding's input paths: absolute, or relative to the job's inputs
      // folder and not leaving it (the worker checks existence: it knows that
      // folder; PathCheck would stat a relative path against the wrong one).
      [] {
        auto InputPathCheck = [](const Json& v) -> std::string {
          const std::string s = v.get<std::string>();
          if (s.empty() || s[0] == '/') return "";
          int depth = 0;
          size_t i = 0;
          while (i <= s.size()) {
            size_t j = s.find('/', i);
            if (j == std::string::npos) j = s.size();
            const std::string part = s.substr(i, j - i);
            if (part == "..") {
              if (--depth < 0) return "relative path \"" + s + "\" leaves the job's inputs folder";
            } else if (!part.empty() && part != ".") {
              ++depth;
            }
            i = j + 1;
          }
          return depth == 0 ? "relative path \"" + s + "\" names the inputs folder itself" : "";
        };
        return Object("encoding", {
            String("responses").Default("").Check(InputPathCheck)
                .Doc("neural responses .npy [stimuli, units] (float/int; [N] = one unit); required with analyses: [encoding]. "
                     "Absolute path on the worker, or relative to the job's inputs folder"),
            String("images").Default("").Check(InputPathCheck)
                .Doc("stimulus folder: every .png/.jpg/.jpeg under it, row i = i-th file in byte-wise order of its "
                     "relative path (exactly one of images / stimuli_npy)"),
            String("stimuli_npy").Default("").Check(InputPathCheck)
                .Doc("stimuli .npy [N,H,W], [N,H,W,3] or [N,3,H,W]; uint8 0-255 or float 0-1; resized to image_size"),
            String("ceiling").Default("").Check(InputPathCheck)
                .Doc("optional per-unit noise ceiling .npy [units] (or one value), Pearson-r units: adds r / ceiling"),
            String("test_indices").Default("").Check(InputPathCheck)
                .Doc("optional .npy of test rows (a fixed split, as the Majaj-Hong/NSD id files); overrides folds"),
            StringList("layers").Default(Json::array())
                .Doc("layer names (or features) to score; empty = every layer of the model"),
            Int("max_features").Default(20000).Min(0)
                .Doc("average-pool a C x H x W map to C x s x s, s = floor(sqrt(max_features / C)) (>= 1) when "
                     "larger; 0 = never pool"),
            Object("alphas", {
                Double("log10_min").Default(-10).Range(-30, 30).Doc("smallest penalty, log10"),
                Double("log10_max").Default(9).Range(-30, 30).Doc("largest penalty, log10"),
                Int("count").Default(20).Range(1, 1000).Doc("penalties, log-spaced"),
            }).Doc("ridge penalties tried by leave-one-out (default: the reference's 10^-10 .. 10^9)"),
            Enum("alpha_score", {"pearson", "mse"}).Default("pearson")
                .Doc("LOO criterion: mean Pearson r over units (reference) or MSE (sklearn)"),
            Int("folds").Default(0).Range(0, 1000)
                .Check([](const Json& v) { return v.get<int64_t>() == 1 ? std::string("must be 0 or >= 2") : std::string(); })
                .Doc("0 = one seeded train/test split (train_fraction); k >= 2 = k seeded folds, r averaged over folds"),
            Double("train_fraction").Default(0.8).Range(0.01, 0.99).Doc("fraction of stimuli for training when folds: 0"),
            Int("bootstrap").Default(1000).Range(0, 1000000).Doc("bootstrap resamples of held-out stimuli (0 = none)"),
            Enum("bootstrap_axis", {"units", "stimuli"}).Default("units")
                .Doc("bootstrap score: r per unit (docstrings) or per-stimulus pattern r (reference code)"),
            Int("seed").Default(0).Min(0).Doc("seed of the split and the bootstrap"),
        }).Doc("encoding score on neural data (analyses: [encoding]; models.md 2.2)");
      }(),
      Object("pca", {
          StringList("layers").Default(Json::array()).Doc("layer names (or features); empty = every layer"),
          Int("images").Default(1000).Min(0).Doc("images of the split (seeded subset; 0 = all)"),
          Enum("split", {"test", "train"}).Default("test").Doc("split of the job's data"),
          Int("seed").Default(0).Min(0).Doc("seed of the image subset"),
          Int("max_features").Default(20000).Min(0).Doc("pooling rule as encoding.max_features"),
          Int("spectrum_components").Default(100).Min(0).Doc("eigenvalues listed in pca.json (0 = all)"),
          Int("fit_min_rank").Default(10).Min(1).Doc("power-law fit: first rank (1-based)"),
          Int("fit_max_rank").Default(500).Min(1).Doc("power-law fit: last rank (clipped to the spectrum)"),
      }).Doc("PCA spectrum and effective dimensionality (analyses: [pca]; models.md 2.3)"),
      Object("linear_probe", {
          StringList("layers").Default(Json::array({"features"})).Doc("layer names (or features) to probe"),
          Int("train_images").Default(5000).Min(0).Doc("images of the data's train split (seeded subset; 0 = all)"),
          Int("test_images").Default(1000).Min(0).Doc("images of the data's test split (seeded subset; 0 = all)"),
          Int("seed").Default(0).Min(0).Doc("seed of the image subsets"),
          Double("l2").Default(1e-4).Range(0, 1e6).Doc("L2 penalty (l2/2)*||W||^2 on the mean cross-entropy"),
          Int("max_iter").Default(200).Range(1, 1000000).Doc("LBFGS iterations"),
          Bool("standardize").Default(true).Doc("z-score features with the training mean/std"),
          Int("pca_components").Default(0).Min(0).Doc("> 0: project on that many training PCs first (0 = off)"),
          Int("max_features").Default(20000).Min(0).Doc("pooling rule as encoding.max_features (maps only)"),
      }).Doc("logistic-regression probe on frozen features (analyses: [linear_probe]; models.md 2.3)"),
  };
}

}  // namespace topolab::config
