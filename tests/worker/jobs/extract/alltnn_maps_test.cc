// The `alltnn_maps` extract analysis run in-process through the extract job:
//  * on the random mini All-TNN (3 layers, 32 px): every file and metric is
//    there with the right shapes, and the streamed orientation tuning equals
//    a one-batch computation laid out on the sheet by the formula of
//    models.md §1.1 (written out here, not via ChannelsToSheet);
//  * on a planted one-layer net (norm none, zero bias) whose 8 channels per
//    position are: Gabors at 0/45/90/135 deg, a +mean filter, a -mean
//    filter and two silent units. Orientation bins, silent fraction, d' and
//    transmission energy on constant-grey images all have closed forms;
//  * errors: a non-alltnn family, unknown layers and keys.
#include "worker/jobs/extract/alltnn_maps.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "tests/worker/jobs/job_test_util.h"
#include "worker/jobs/extract/extract_job.h"
#include "worker/science/data/dataset.h"
#include "worker/science/families/alltnn.h"
#include "worker/science/families/alltnn_analysis.h"
#include "worker/science/io/npy.h"
#include "worker/science/io/png.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"
#include "worker/science/viz/viz.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

constexpr double kPi = 3.14159265358979323846;

// Grey levels of the constant test images; dark = 255 - bright, so |2v-1|
// takes the same three values in both categories.
const int kBright[] = {178, 204, 229};
const int kDark[] = {77, 51, 26};

class AllTnnMapsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTestDir("alltnn_maps_test");
    fs::create_directories(dir_ / "out");
    at::manual_seed(0);
    ctx_.out_dir = dir_ / "out";
    ctx_.inputs_dir = dir_ / "inputs";
    ctx_.reporter = &reporter_;
    ctx_.spec = {{"kind", "extract"},
                 {"needs", {"train"}},
                 {"stimuli", Json::array()},
                 {"analyses", {"alltnn_maps"}},
                 {"batch_size", 5},
                 {"wiring", {{"enabled", false}}}};
  }
  // TOPOLAB_KEEP_TEST_OUTPUT=1 keeps the outputs (maps) for a look.
  void TearDown() override {
    if (std::getenv("TOPOLAB_KEEP_TEST_OUTPUT") == nullptr) fs::remove_all(dir_);
  }
  // Builds the model of `model_spec`, lets `plant` edit it, saves the checkpoint.
  void SaveModel(const Json& model_spec, const Json& data_spec,
                 const std::function<void(sci::AllTnnImpl&)>& plant = nullptr) {
    auto model = sci::MakeModel(model_spec, 10);
    ASSERT_OK(model);
    model_ = *model;
    if (plant) plant(*dynamic_cast<sci::AllTnnImpl*>(model_.get()));
    Json meta = {{"model", model_spec}, {"num_classes", 10}, {"image_size", 32}, {"data", data_spec}};
    ASSERT_OK(sci::SaveCheckpoint((dir_ / "inputs/train/checkpoints/final.pt").string(), *model_,
                                  nullptr, 1, meta));
  }
  Json Run() {
    absl::Status s = MakeExtractJob()->Run(ctx_);
    EXPECT_OK(s);
    if (!s.ok()) return Json();
    std::ifstream f(ctx_.out_dir / "metrics.json");
    return Json::parse(f)["analyses"]["alltnn_maps"];
  }
  at::Tensor Npy(const std::string& file) {
    return sci::ReadNpy((ctx_.out_dir / "alltnn_maps" / file).string()).to(at::kDouble);
  }

  fs::path dir_;
  std::shared_ptr<sci::VisionModel> model_;
  RecordingReporter reporter_;
  JobContext ctx_;
};

bool Finite(const Json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

TEST_F(AllTnnMapsTest, MiniModelWritesEveryMapAndMetric) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const Json model_spec = {{"family", "alltnn"}, {"preset", "mini"}};
  SaveModel(model_spec, {{"dataset", "fashion_mnist"}, {"image_size", 32}});
  ctx_.spec["alltnn_maps"] = {{"per_category", 3}, {"images", 7}, {"png_side", 64}};
  const Json r = Run();
  ASSERT_TRUE(r.is_object());

  // Sheets of the mini net: 14x14 x (4x4), 5x5 x (4x4), 3x3 x (5x5).
  const std::map<std::string, std::pair<int64_t, int64_t>> sheets = {
      {"layer0", {56, 56}}, {"layer1", {20, 20}}, {"layer2", {15, 15}}};
  for (const auto& [l, hw] : sheets) {
    SCOPED_TRACE(l);
    EXPECT_EQ(r["sheets"][l]["sheet"], Json::array({hw.first, hw.second}));
    const Json& o = r["orientation"]["layers"][l];
    for (const char* k : {"mean_entropy", "fraction_silent", "mean_spread"}) EXPECT_TRUE(Finite(o[k])) << k;
    EXPECT_TRUE(o["mean_cluster_radius"].is_null() || Finite(o["mean_cluster_radius"]));
    EXPECT_GE(o["mean_entropy"].get<double>(), 0.0);
    EXPECT_LE(o["mean_entropy"].get<double>(), std::log(8.0) + 1e-9);
    EXPECT_GE(o["fft_profile"].size(), 2u);
    for (const char* f : {"orientation_", "orientation_spread_", "orientation_entropy_",
                          "energy_activation_", "energy_transmission_"}) {
      EXPECT_TRUE(fs::exists(ctx_.out_dir / "alltnn_maps" / (f + l + ".png"))) << f;
    }
    EXPECT_EQ(Npy("orientation_preference_" + l + ".npy").sizes(), at::IntArrayRef({hw.first, hw.second}));
    EXPECT_EQ(Npy("orientation_tuning_" + l + ".npy").sizes(), at::IntArrayRef({8, hw.first, hw.second}));
    EXPECT_EQ(Npy("energy_transmission_" + l + ".npy").sizes(), at::IntArrayRef({hw.first, hw.second}));
    const Json& e = r["energy"]["layers"][l];
    for (const char* k : {"activation_l1", "activation_l1_per_unit", "transmission_energy"}) {
      EXPECT_TRUE(Finite(e[k])) << k;
      EXPECT_GT(e[k].get<double>(), 0.0) << k;
    }
    // Per-image L1 = units x per-unit mean.
    EXPECT_NEAR(e["activation_l1"].get<double>(),
                e["activation_l1_per_unit"].get<double>() * hw.first * hw.second,
                1e-6 * e["activation_l1"].get<double>());
    EXPECT_EQ(e["transmission_disc_profile"].size(), static_cast<size_t>(std::min(hw.first, hw.second) / 2));
  }
  EXPECT_EQ(r["orientation"]["stimuli"]["rows"], 24);  // 8 orientations x 3 phases
  // Category maps on the last layer, 10 Fashion-MNIST classes.
  const Json& c = r["category"];
  EXPECT_EQ(c["categories"].size(), 10u);
  EXPECT_EQ(c["images_per_category"]["sandal"], 3);
  EXPECT_EQ(c["layers"]["layer2"]["selective_fraction"].size(), 10u);
  for (const auto& [name, v] : c["layers"]["layer2"]["selective_fraction"].items()) {
    EXPECT_TRUE(Finite(v)) << name;
  }
  EXPECT_EQ(Npy("dprime_layer2.npy").sizes(), at::IntArrayRef({10, 225}));
  EXPECT_EQ(Npy("category_winner_layer2.npy").sizes(), at::IntArrayRef({15, 15}));
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "alltnn_maps/category_wta_layer2.png"));
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "alltnn_maps/category_wta_dprime_layer2.png"));
  // Energy: 7 images; stacked = layers 0-1 zoomed to 56x56.
  EXPECT_EQ(r["energy"]["images"], 7);
  EXPECT_EQ(r["energy"]["stacked"]["layers"], Json::array({"layer0", "layer1"}));
  EXPECT_EQ(Npy("energy_stacked.npy").sizes(), at::IntArrayRef({56, 56}));
  EXPECT_EQ(r["energy"]["stacked"]["disc_profile"].size(), 28u);
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "alltnn_maps/energy_stacked.png"));
  // The PNG is a figure: wider than the 56-px sheet drawn at png_side 64.
  at::Tensor png = sci::ReadPngRgb((ctx_.out_dir / "alltnn_maps/orientation_layer0.png").string());
  EXPECT_GT(png.size(0), 112);
  // Every file was announced as an artifact.
  EXPECT_NE(std::find(reporter_.artifacts.begin(), reporter_.artifacts.end(), "alltnn_maps/dprime_layer2.npy"),
            reporter_.artifacts.end());

  // Streamed tuning (5 gratings per batch) == one batch of all 24 gratings,
  // max over the 3 phases, with unit (ch, h, w) placed at sheet row
  // h*c0 + ch/c1, column w*c1 + ch%c1 (layer1: 16 channels, c0 = c1 = 4).
  model_->eval();
  at::NoGradGuard ng;
  sci::AllTnnGratingOptions go;
  go.image_size = 32;
  sci::AllTnnGratingSet set(go);
  auto* net = dynamic_cast<sci::AllTnnImpl*>(model_.get());
  at::Tensor y = net->ForwardUnit(set.Images(0, 24)).layers[1].to(at::kDouble);  // [24, 16, 5, 5]
  at::Tensor want = at::zeros({8, 20, 20}, at::kDouble);
  for (int64_t k = 0; k < 8; ++k) {
    at::Tensor curve = std::get<0>(y.narrow(0, 3 * k, 3).max(0));  // rows: orientation k, 3 phases
    for (int64_t ch = 0; ch < 16; ++ch) {
      for (int64_t h = 0; h < 5; ++h) {
        for (int64_t w = 0; w < 5; ++w) want[k][h * 4 + ch / 4][w * 4 + ch % 4] = curve[ch][h][w];
      }
    }
  }
  EXPECT_TRUE(at::allclose(Npy("orientation_tuning_layer1.npy"), want, 1e-4, 1e-5));
}

// One LC layer, kernel 9 / stride 4 on 32 px: 6x6 positions x 8 channels,
// tile 2x4, sheet 12x24. Channels 0-3 (even sheet rows): odd Gabors at
// 0, 45, 90, 135 deg with lambda 6; 4: +mean filter; 5: -mean filter; 6-7: 0.
void Plant(sci::AllTnnImpl& net) {
  at::NoGradGuard ng;
  at::Tensor w = net.LayerWeight(0);  // [36, 3*81, 8]
  ASSERT_EQ(w.sizes(), at::IntArrayRef({36, 243, 8}));
  at::Tensor k = at::zeros({243, 8}, at::kFloat);
  for (int ch = 0; ch < 4; ++ch) {
    const double theta = kPi * ch / 4.0;
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 9; ++i) {
        for (int j = 0; j < 9; ++j) {
          const double x = j - 4, yy = i - 4;
          const double g = std::sin(theta) * x - std::cos(theta) * yy;  // models.md gradient
          const double env = std::exp(-(x * x + yy * yy) / (2.0 * 2.0 * 2.0));
          k[c * 81 + i * 9 + j][ch] = env * std::sin(2.0 * kPi * g / 6.0);
        }
      }
    }
  }
  k.select(1, 4).fill_(1.0 / 243.0);
  k.select(1, 5).fill_(-1.0 / 243.0);
  w.copy_(k.unsqueeze(0).expand({36, 243, 8}));
  for (auto& p : net.named_parameters()) {
    if (p.key().find("bias") != std::string::npos) p.value().zero_();
  }
}

TEST_F(AllTnnMapsTest, PlantedSheetHasKnownOrientationDPrimeAndEnergy) {
  // Category / energy images: constant greys in bright/ and dark/.
  const fs::path cats = dir_ / "greys";
  for (const char* sub : {"bright", "dark"}) fs::create_directories(cats / sub);
  for (int i = 0; i < 3; ++i) {
    const uint8_t b = static_cast<uint8_t>(kBright[i]), d = static_cast<uint8_t>(kDark[i]);
    sci::Canvas(32, 32, {b, b, b}).Save((cats / "bright" / (std::to_string(i) + ".png")).string());
    sci::Canvas(32, 32, {d, d, d}).Save((cats / "dark" / (std::to_string(i) + ".png")).string());
  }
  const Json model_spec = {{"family", "alltnn"},
                           {"image_size", 32},
                           {"norm", "none"},
                           {"layers", {{{"kernel", 9}, {"stride", 4}, {"channels", 8}}}}};
  SaveModel(model_spec, {{"dataset", "image_folder"}, {"path", cats.string()}, {"image_size", 32}}, Plant);
  ctx_.spec["alltnn_maps"] = {
      {"wavelengths", {6.0}}, {"categories_path", cats.string()}, {"per_category", 0}, {"images", 6}};
  const Json r = Run();
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["sheets"]["layer0"]["sheet"], Json::array({12, 24}));

  // Orientation: Gabor units (even rows) land in bin 2*ch; channels 6 and 7
  // (2 of 8 units per position) are the silent ones.
  const at::Tensor pref = Npy("orientation_preference_layer0.npy");
  ASSERT_EQ(pref.sizes(), at::IntArrayRef({12, 24}));
  for (int64_t row = 0; row < 12; row += 2) {
    for (int64_t col = 0; col < 24; ++col) {
      const double deg = pref[row][col].item<double>();
      const double want = 45.0 * (col % 4);
      double diff = std::fmod(std::abs(deg - want), 180.0);
      diff = std::min(diff, 180.0 - diff);
      EXPECT_LT(diff, 5.0) << "sheet (" << row << ", " << col << ") pref " << deg;
    }
  }
  EXPECT_DOUBLE_EQ(r["orientation"]["layers"]["layer0"]["fraction_silent"].get<double>(), 0.25);
  for (int64_t col = 0; col < 24; ++col) {
    EXPECT_TRUE(std::isnan(pref[11][col].item<double>()) == (col % 4 >= 2)) << col;
  }

  // d' closed form: unit 4 answers 2v-1 to bright images and 0 to dark ones,
  // so d'_bright = (mean - 0) / ((sd + 0)/2 + 1e-10) (population sd), and
  // d'_dark = -d'_bright; unit 5 mirrors it; silent units get 0.
  double mean = 0, sq = 0;
  for (int v : kBright) {
    const double a = 2.0 * v / 255.0 - 1.0;
    mean += a / 3;
    sq += a * a / 3;
  }
  const double sd = std::sqrt(sq - mean * mean);
  const double dp = mean / (sd / 2 + 1e-10);
  ASSERT_GT(dp, 5.0);
  const at::Tensor d = Npy("dprime_layer0.npy");  // [2 categories, 12*24 sheet units]
  ASSERT_EQ(d.sizes(), at::IntArrayRef({2, 288}));
  const at::Tensor winner = Npy("category_winner_layer0.npy");
  for (int64_t h = 0; h < 6; ++h) {
    for (int64_t w = 0; w < 6; ++w) {
      const int64_t row = 2 * h + 1;  // channels 4-7: ch / 4 = 1
      const int64_t u4 = row * 24 + 4 * w, u5 = u4 + 1, u6 = u4 + 2, u7 = u4 + 3;
      EXPECT_NEAR(d[0][u4].item<double>(), dp, 1e-3 * dp);
      EXPECT_NEAR(d[1][u4].item<double>(), -dp, 1e-3 * dp);
      EXPECT_NEAR(d[1][u5].item<double>(), dp, 1e-3 * dp);
      EXPECT_NEAR(d[0][u5].item<double>(), -dp, 1e-3 * dp);
      EXPECT_EQ(d[0][u6].item<double>(), 0.0);
      EXPECT_EQ(d[1][u7].item<double>(), 0.0);
      EXPECT_EQ(winner[row][4 * w].item<double>(), 0);      // bright
      EXPECT_EQ(winner[row][4 * w + 1].item<double>(), 1);  // dark
      EXPECT_EQ(winner[row][4 * w + 2].item<double>(), -1);  // tie
    }
  }
  EXPECT_GE(r["category"]["layers"]["layer0"]["selective_fraction"]["bright"].get<double>(), 36.0 / 288 - 1e-12);
  EXPECT_EQ(r["category"]["categories"], Json::array({"bright", "dark"}));
  EXPECT_EQ(r["category"]["images_per_category"], Json({{"bright", 3}, {"dark", 3}}));

  // Transmission energy over the 6 images: unit 4 has |W| = 1/243 on all
  // 243 inputs, so pre = |2v-1| per image and post = max(2v-1, 0):
  // E = (1/3) sum_bright (2v-1) + (2/3) sum_all |2v-1|; mean |activation| =
  // sum_bright (2v-1) / 6. Silent units: 0.
  double post = 0, pre = 0;
  for (int v : kBright) post += 2.0 * v / 255.0 - 1.0;
  for (int v : kBright) pre += std::abs(2.0 * v / 255.0 - 1.0);
  for (int v : kDark) pre += std::abs(2.0 * v / 255.0 - 1.0);
  const at::Tensor e = Npy("energy_transmission_layer0.npy");
  const at::Tensor a = Npy("energy_activation_layer0.npy");
  for (int64_t w = 0; w < 6; ++w) {
    EXPECT_NEAR(e[1][4 * w].item<double>(), post / 3 + 2 * pre / 3, 1e-4);
    EXPECT_NEAR(e[1][4 * w + 1].item<double>(), post / 3 + 2 * pre / 3, 1e-4);  // dark mirrors
    EXPECT_NEAR(a[1][4 * w].item<double>(), post / 6, 1e-5);
    EXPECT_EQ(e[1][4 * w + 2].item<double>(), 0.0);
  }
  EXPECT_EQ(r["energy"]["images"], 6);
  // A one-layer net stacks its only layer: the stacked map is that map.
  EXPECT_EQ(r["energy"]["stacked"]["layers"], Json::array({"layer0"}));
  EXPECT_TRUE(at::allclose(Npy("energy_stacked.npy"), e));
}

TEST_F(AllTnnMapsTest, RejectsOtherFamiliesUnknownLayersAndKeys) {
  const Json model_spec = {{"family", "alltnn"},
                           {"image_size", 32},
                           {"norm", "none"},
                           {"layers", {{{"kernel", 3}, {"stride", 2}, {"channels", 4}}}}};
  SaveModel(model_spec, {{"dataset", "fashion_mnist"}, {"image_size", 32}});
  ctx_.spec["alltnn_maps"] = {{"layers", {"layer7"}}};
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("alltnn_maps.layers: unknown layer \"layer7\""), std::string::npos) << s;

  ctx_.spec["alltnn_maps"] = {{"wavelenghts", {3}}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("alltnn_maps.wavelenghts: unknown key"), std::string::npos) << s;

  ctx_.spec["alltnn_maps"] = {{"wavelengths", {1.0}}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_NE(s.message().find("alltnn_maps.wavelengths"), std::string::npos) << s;

  // A ResNet-18 checkpoint: FailedPrecondition naming the family.
  fs::remove_all(dir_ / "inputs");
  auto resnet = sci::MakeModel({{"family", "resnet18"}}, 10);
  ASSERT_OK(resnet);
  ASSERT_OK(sci::SaveCheckpoint((dir_ / "inputs/train/checkpoints/final.pt").string(), **resnet, nullptr, 1,
                                {{"model", {{"family", "resnet18"}}}, {"num_classes", 10}, {"image_size", 32}}));
  ctx_.spec.erase("alltnn_maps");
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("\"resnet18\""), std::string::npos) << s;
}

TEST(AllTnnMapsOptionsTest, DefaultsFollowModelsMd) {
  absl::StatusOr<AllTnnMapsOptions> o = ParseAllTnnMapsOptions(Json());
  ASSERT_OK(o);
  EXPECT_EQ(o->wavelengths, std::vector<double>({3.0}));
  EXPECT_EQ(o->orientations, 8);
  EXPECT_EQ(o->window_half_width, 4);
  EXPECT_EQ(o->smooth, 8);
  EXPECT_DOUBLE_EQ(o->dprime_threshold, 0.85);
  EXPECT_FALSE(ParseAllTnnMapsOptions(Json::array()).ok());
  EXPECT_FALSE(ParseAllTnnMapsOptions({{"images", 0}}).ok());
  EXPECT_FALSE(ParseAllTnnMapsOptions({{"category_layers", "layer0"}}).ok());
}

}  // namespace
}  // namespace topolab::worker
