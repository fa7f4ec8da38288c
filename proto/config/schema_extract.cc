// `kind: extract` — activations of a checkpoint to stimuli, analyses, maps —
// and the `analysis:` options object shared with `kind: analyze`.
// Owner after the engine landed: the analysis engineer. The worker reads the
// same keys in worker/jobs/extract and worker/science/analysis/report.cc.
#include <algorithm>

#include "proto/config/schema.h"

namespace topolab::config {

std::vector<std::string> ExtraAnalysisNames();  // schema_extract_analyses.cc
std::vector<Field> ExtraAnalysisFields();       // schema_extract_analyses.cc

// The `analysis` object (defaults = tdann.md §7 OFFICIAL values).
Field AnalysisOptionsField() {
  return Object("analysis", {
      Enum("preferred", {"von_mises", "argmax"}).Default("von_mises")
          .Doc("preferred orientation: von Mises fit on the interpolated curve (OFFICIAL) or argmax"),
      Enum("winding_loop", {"closed", "open"}).Default("closed")
          .Doc("pinwheel winding: closed 8-step loop, or the OFFICIAL code's open 7 steps"),
      Double("position_scale").Default(1.0).Positive().Max(1000)
          .Doc("multiply positions by this before analysing (train-scale -> human-scale factor)"),
      Int("seed").Default(424).Min(0).Doc("seed of the unit sampling in smoothness analyses"),
      Bool("write_pngs").Default(true).Doc("draw the PNG maps and plots"),
      Double("display_t_threshold").Default(10.0).Doc("selective fraction per domain counts t > this"),
      Object("selectivity", {
          Double("cv_threshold").Default(0.6).Range(0, 1).Doc("selective: circular variance below this"),
          Double("min_mean").Default(1.0).Min(0).Doc("responsive: mean rescaled response above this"),
          Double("reference_median_peak").Default(12.0).Positive()
              .Doc("median peak response the rescaling targets (Ringach 2002 sample)"),
      }).Doc("the % selective figure (§7.1)"),
      Object("opm_smoothness", {
          Double("max_distance_mm").Default(3.2998316455372216).Positive().Doc("largest pair distance"),
          Int("bins").Default(9).Range(1, 1000).Doc("distance bins"),
          Int("repetitions").Default(20).Range(1, 100000).Doc("unit samples"),
          Int("sample_size").Default(1000).Min(2).Doc("units per sample"),
          Double("ptp_percentile").Default(75.0).Range(0, 100)
              .Doc("keep units whose tuning peak-to-peak is above this percentile"),
      }).Doc("orientation/SF/colour preference smoothness (§7.2)"),
      Object("pinwheels", {
          Double("window_mm").Default(1.5).Positive().Doc("smoothing window side"),
          Double("stride_mm").Default(0.45).Positive().Doc("window stride"),
          Double("winding_threshold").Default(0.3).Range(0, 1).Doc("|winding| above this"),
          Double("heterogeneity_threshold").Default(0.3).Min(0).Doc("heterogeneity below this"),
          Int("min_component_pixels").Default(2).Min(1).Doc("8-connected components at least this big"),
          Double("column_spacing_mm").Default(3.5).Positive().Doc("density unit: per column spacing^2"),
      }).Doc("pinwheel detection (§7.3)"),
      Object("patches", {
          Int("grid").Default(100).Range(2, 2000).Doc("anchors per axis"),
          Double("sigma_mm").Default(2.4).Positive().Doc("Gaussian smoothing sigma"),
          Double("threshold").Default(2.0).Doc("smoothed t below this is zeroed"),
          Double("member_radius_mm").Default(1.0).Min(0).Doc("unit-to-patch-pixel distance"),
          Int("min_member_units").Default(3).Min(0).Doc("components with fewer members are dropped"),
          Double("min_area_mm2").Default(100.0).Min(0).Doc("smallest patch area"),
          Double("max_area_mm2").Default(4500.0).Min(0).Doc("largest patch area"),
          Int("min_units").Default(10).Min(0).Doc("fewest member units"),
      }).Doc("category patches (§7.5); area = pixel footprint of the component"),
      Object("category_smoothness", {
          Double("max_distance_mm").Default(60.0).Positive().Doc("largest pair distance"),
          Int("bins").Default(9).Range(1, 1000).Doc("distance bins"),
          Int("repetitions").Default(25).Range(1, 100000).Doc("unit samples"),
          Int("sample_size").Default(500).Min(2).Doc("units per sample"),
          Double("min_mean_response").Default(0.5).Doc("sampled units keep only above this mean response"),
      }).Doc("category selectivity smoothness (§7.6)"),
  }).Doc("analysis options (tdann.md §7); defaults are the OFFICIAL values");
}

KindSchema ExtractSchema() {
  KindSchema k;
  k.kind = "extract";
  k.doc = "run a checkpoint over stimulus sets, save activations, run analyses and draw maps";
  k.uses_data = true;
  k.fields = {
      String("checkpoint_from").Default("").StageRef()
          .Doc("stage id (in needs) whose checkpoints/final.pt is loaded; empty = the first need"),
      String("positions_from").Default("").StageRef()
          .Doc("stage id (in needs) whose positions/<layer>.npy lay out the units; empty = fresh sheets"),
      StringList("stimuli").Default(Json::array({"sine_gratings", "categories"}))
          .Allowed({"sine_gratings", "categories"})
          .Doc("TDANN stimulus sets analysed on v1_layer / vtc_layer (may be empty when analyses are given)"),
      StringList("analyses").Default(Json::array()).Allowed(ExtraAnalysisNames())
          .Doc("model-level analyses run after the stimulus sets (family maps, robustness, encoding)"),
      StringList("layers").Default(Json::array())
          .Doc("layers whose activations are saved (empty = v1_layer and vtc_layer)"),
      String("v1_layer").Default("layer2.0").NonEmpty().Doc("layer of the grating analyses"),
      String("vtc_layer").Default("layer4.1").NonEmpty().Doc("layer of the category analyses"),
      Bool("float16").Default(false).Doc("store activations as float16"),
      Bool("save_activations").Default(true).Doc("write activations .npy artifacts"),
      Int("batch_size").Default(64).Range(1, 65536).Doc("images per forward pass"),
      Int("image_size").Default(0).Range(0, 4096).Doc("stimulus side in px (0 = the checkpoint's)"),
      Int("stimulus_repeat").Default(1).Range(1, 1000)
          .Doc("stream each stimulus set this many times (memory benchmarks)"),
      Enum("normalize", {"imagenet", "none"}).Default("imagenet").Doc("input preprocessing"),
      Int("sheet_seed").Default(0).Min(0).Doc("seed of fresh retinotopic sheets"),
      String("categories_path").Default("").Path(PathCheck::kDirectory)
          .Doc("fLoc-style folder (one subfolder per category); empty = Fashion-MNIST test set"),
      Object("categories", {
          Int("per_category").Default(100).Min(0).Doc("images per category (0 = all)"),
          Map("domains", StringList("domain").NonEmpty()).Default(Json::object())
              .Doc("domain -> its categories (empty: fLoc contrasts / Fashion-MNIST grouping)"),
      }).Doc("category stimulus set"),
      Object("gratings", {
          Enum("sf_spacing", {"linear", "log"}).Default("linear")
              .Doc("linear = OFFICIAL linspace(5.5, 110, 9)[:-1] cycles/image; log = REPRO 0.5-12 cpd"),
          Double("visual_field_deg").Default(8.0).Positive().Doc("degrees spanned by the image"),
      }).Doc("sine-grating set"),
      Object("wiring", {
          Bool("enabled").Default(true).Doc("wiring length (§7.7) on test images"),
          Int("images").Default(50).Range(1, 100000).Doc("test images used"),
      }).Doc("wiring-length analysis"),
      AnalysisOptionsField(),
  };
  for (Field& f : ExtraAnalysisFields()) k.fields.push_back(std::move(f));
  k.check = [](const Json& spec) -> std::pair<std::string, std::string> {
    if (spec.value("stimuli", Json::array()).empty() && spec.value("analyses", Json::array()).empty()) {
      return {"stimuli", "must not be empty when analyses is empty (nothing to extract)"};
    }
    const Json analyses = spec.value("analyses", Json::array());
    if (std::find(analyses.begin(), analyses.end(), "encoding") != analyses.end()) {
      const Json enc = spec.value("encoding", Json::object());
      if (enc.value("responses", std::string()).empty()) {
        return {"encoding.responses", "required with analyses: [encoding] (a .npy of stimuli x units)"};
      }
      if (enc.value("images", std::string()).empty() == enc.value("stimuli_npy", std::string()).empty()) {
        return {"encoding", "give exactly one of images (a folder) or stimuli_npy"};
      }
    }
    return {};
  };
  return k;
}

}  // namespace topolab::config
