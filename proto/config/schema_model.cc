// `model:` — which network a job builds. One set of keys per `family`; the
// families engineer adds the keys of alltnn / v1resnet / expansion here.
#include <string>

#include "proto/config/schema.h"

namespace topolab::config {

Field ModelSchema() {
  Field f = TaggedObject("model", "family", {
      Enum("family", {"resnet18", "alltnn", "v1resnet", "expansion"}).Default("resnet18")
          .Doc("model family"),
  });
  f.Variant("resnet18", {
      Int("num_classes").Default(0).Range(0, 100000)
          .Doc("classifier outputs; 0 = the number of classes of the dataset"),
      Int("projection_dim").Default(128).Range(1, 65536).Doc("SimCLR projection output size"),
      Int("hidden_dim").Default(512).Range(1, 65536).Doc("SimCLR projection hidden size"),
  });
  // Families engineer: keys of worker/science/families/{alltnn,v1resnet,expansion}.h.
  f.Variant("alltnn", {
      Int("num_classes").Default(0).Range(0, 100000)
          .Doc("readout width; 0 = the number of classes of the dataset"),
      Enum("preset", {"full", "mini"}).Default("full")
          .Doc("full = the six LC layers of the paper at 150 px; mini = 3 layers at 32 px"),
      Int("image_size").Range(2, 4096).Doc("input side (default 150 full / 32 mini)"),
      List("layers", Object("layer", {
          Int("kernel").Default(3).Range(1, 64).Doc("LC/conv kernel side"),
          Int("stride").Default(1).Range(1, 64).Doc("stride"),
          Int("channels").Default(16).Range(1, 100000).Doc("output channels (a hypercolumn tile per position)"),
          Bool("pool").Default(false).Doc("2x2 max-pool after the block"),
      })).Length(1, 64)
          .Doc("the LC layers, first to last, replacing the preset's (each output grid must stay >= 1 unit)"),
      NumberList("layer_factors", 0, 1e9)
          .Doc("per-layer smoothness factor f_l, one per layer (default all 1)"),
      Enum("layer_type", {"lc", "conv"}).Default("lc").Doc("conv = the CNN control (shared weights)"),
      Double("alpha").Default(10.0).Range(0, 1e9).Doc("smoothness loss weight; 0 = the LCN control"),
      Bool("circular").Default(true).Doc("sheet wraps around for neighbour pairs"),
      Int("neighbourhood").Default(4).Range(4, 8).Doc("4 (down/right) or 8 neighbours")
          .Check([](const Json& v) { return v == 4 || v == 8 ? std::string() : std::string("must be 4 or 8"); }),
      Bool("smoothness_bias").Default(true).Doc("append each unit's bias to its kernel vector"),
      Double("l2").Default(1e-6).Range(0, 1e3).Doc("L2 penalty on LC/conv kernels"),
      Enum("norm", {"layer", "none"}).Default("layer").Doc("LayerNorm over channels after each block"),
      Bool("norm_first").Default(false).Doc("normalise before the ReLU"),
      Double("dropout").Default(0.0).Range(0, 0.99).Doc("dropout after each block"),
      Enum("init", {"glorot_conv", "glorot_keras"}).Default("glorot_conv").Doc("LC kernel initialiser"),
      Enum("energy_post", {"activation", "normalized"}).Default("activation")
          .Doc("what |post| means in the transmission energy"),
  });
  f.Variant("v1resnet", {
      Int("num_classes").Default(0).Range(0, 100000)
          .Doc("classifier outputs; 0 = the number of classes of the dataset"),
      Enum("variant", {"resnet50", "center_surround", "local_rf", "div_norm", "tuned_norm",
                       "cortical_magnification", "composite_a", "composite_b", "composite_c",
                       "composite_d", "composite_e", "composite_f", "composite_g"})
          .Default("resnet50").Doc("V1 component mix (models.md 3.2)"),
      Int("image_size").Default(64).Range(32, 1024).Doc("input side, a multiple of 32"),
      Int("width_divisor").Default(1).Range(1, 16).Doc("8 = the ResNet-mini widths"),
      Enum("depth", {"resnet50", "mini"}).Default("resnet50")
          .Doc("blocks per stage: resnet50 = [3,4,6,3], mini = [3,1,1,1]"),
      IntList("blocks", 1, 64).Length(4)
          .Doc("explicit blocks per stage, overriding depth (layer1 must hold the variant's DoG/LC blocks: 3 for LC variants)"),
      Enum("dog_mode", {"clean", "reference"}).Default("clean").Doc("DoG kernel formula"),
      Enum("polar_outer_fill", {"nearest", "zero"}).Default("nearest")
          .Doc("empty peripheral polar sectors: nearest sector's mask, or zero (reference)"),
  });
  f.Variant("expansion", {
      Int("num_classes").Default(0).Range(0, 100000)
          .Doc("linear readout width (the only trained part); 0 = the number of classes of the dataset"),
      Int("image_size").Default(224).Range(142, 4096).Doc("input side the features are sized for"),
      Int("filters_2").Default(1000).Range(1, 1000000).Doc("block-2 width"),
      Int("filters_3").Default(3000).Range(1, 1000000).Doc("block-3 width"),
      Int("filters_4").Default(5000).Range(1, 1000000).Doc("block-4 width"),
      Int("filters_5").Default(3000).Range(1, 1000000).Doc("block-5 width (features = 36 x this at 224 px)"),
      Enum("init", {"kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal",
                    "orthogonal", "uniform", "normal"}).Default("kaiming_uniform").Doc("random-layer init"),
      Enum("nonlinearity", {"relu", "gelu", "elu", "abs", "leaky_relu", "none", "zscore"})
          .Default("relu").Doc("nonlinearity of every block"),
      Enum("layer1", {"curvature", "random"}).Default("curvature")
          .Doc("fixed curvature bank, or the fully_random control"),
      Int("random_filters_1").Default(3000).Range(1, 100000).Doc("layer-1 width of the random control"),
      Enum("curvature_grid", {"reference", "image"}).Default("reference").Doc("filter grid layout"),
      Enum("normalize", {"imagenet", "none"}).Default("imagenet").Doc("input normalisation"),
      Int("seed").Default(42).Range(0, 2147483647).Doc("seed of every random weight"),
      Enum("readout_norm", {"batchnorm", "none"}).Default("batchnorm")
          .Doc("standardise the features (BatchNorm1d, no affine) before the trainable readout, or not"),
  });
  f.Doc("the network; stages may override keys (a different family replaces the whole block)");
  // alltnn: one layer factor per layer (of `layers`, else of the preset),
  // and explicit layers must leave a non-empty grid at image_size (the
  // worker's ParseAllTnnOptions checks the same; here it fails at submit).
  f.Check([](const Json& m) -> std::string {
    if (m.value("family", "") != "alltnn") return "";
    const std::string preset = m.value("preset", "full");
    if (m.contains("layers")) {
      int64_t side = m.contains("image_size") ? m["image_size"].get<int64_t>() : (preset == "mini" ? 32 : 150);
      for (size_t i = 0; i < m["layers"].size(); ++i) {
        const Json& l = m["layers"][i];
        const int64_t span = side - l["kernel"].get<int64_t>();
        side = span < 0 ? 0 : span / l["stride"].get<int64_t>() + 1;
        if (l["pool"].get<bool>()) side /= 2;
        if (side < 1) {
          return ".layers[" + std::to_string(i) + "]: output grid is empty for image_size " +
                 std::to_string(m.contains("image_size") ? m["image_size"].get<int64_t>()
                                                         : (preset == "mini" ? 32 : 150));
        }
      }
    }
    if (!m.contains("layer_factors")) return "";
    const size_t layers = m.contains("layers") ? m["layers"].size() : (preset == "mini" ? 3 : 6);
    const size_t factors = m["layer_factors"].size();
    if (factors == layers) return "";
    return ".layer_factors: must have " + std::to_string(layers) + " items (one per layer" +
           (m.contains("layers") ? "" : " of preset " + preset) + "), got " + std::to_string(factors);
  });
  return f;
}

}  // namespace topolab::config
