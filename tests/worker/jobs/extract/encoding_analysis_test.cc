// The encoding / pca / linear_probe extract analyses (encoding_analyses.h),
// run through the extract job in-process: on a tiny untrained expansion model
// (filters 4/8/8/3 at 144 px, the smallest input the family takes; block5 is
// 3 x 1 x 1) a planted linear mapping scores at its noise ceiling and folder
// rows follow the documented sorted order; on a random ResNet-18 at 32 px
// (fast) PCA's spectrum and participation ratio and the probe's accuracies
// equal direct computations on the same activations, and bad inputs give
// errors naming the key, the path and the counts.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "proto/config/experiment_config.h"
#include "tests/test_util.h"
#include "tests/worker/jobs/job_test_util.h"
#include "worker/jobs/extract/encoding_analyses.h"
#include "worker/jobs/extract/extract_job.h"
#include "worker/science/data/dataset.h"
#include "worker/science/families/encoding.h"
#include "worker/science/io/npy.h"
#include "worker/science/io/png.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

class EncodingAnalysisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(2);
    dir_ = FreshTestDir("encoding_analysis_test");
    fs::create_directories(dir_ / "out");
    fs::create_directories(dir_ / "inputs/neural");
    ctx_.out_dir = dir_ / "out";
    ctx_.inputs_dir = dir_ / "inputs";
    ctx_.reporter = &reporter_;
    ctx_.spec = {{"kind", "extract"},
                 {"needs", {"model"}},
                 {"stimuli", Json::array()},
                 {"batch_size", 16},
                 {"wiring", {{"enabled", false}}}};  // TDANN's wiring pass: not under test
  }
  // The tiny expansion model (144 px: the family's smallest input).
  void BuildExpansion() {
    Build({{"family", "expansion"}, {"image_size", 144}, {"filters_2", 4},
           {"filters_3", 8},        {"filters_4", 8},    {"filters_5", 3}},
          144);
  }
  // A randomly initialised ResNet-18 at 32 px: fast mechanics.
  void BuildResNet() { Build({{"family", "resnet18"}}, 32); }
  void Build(const Json& model_spec, int64_t side) {
    side_ = side;
    at::manual_seed(0);
    auto model = sci::MakeModel(model_spec, 0);
    ASSERT_OK(model);
    model_ = *model;
    model_->eval();
    Json meta = {{"model", model_spec}, {"num_classes", 0}, {"image_size", side}};
    ASSERT_OK(sci::SaveCheckpoint((dir_ / "inputs/model/checkpoints/final.pt").string(), *model_, nullptr, 0,
                                  meta));
  }
  void TearDown() override {
    if (std::getenv("TOPOLAB_KEEP_TEST_OUTPUT") == nullptr) fs::remove_all(dir_);
  }
  Json ReadJson(const fs::path& p) {
    std::ifstream f(p);
    return Json::parse(f);
  }
  // Layer `index` of the model on images [N,3,H,W] (uint8 or [0,1] float,
  // resized to the model's side), flattened, float64.
  at::Tensor Direct(const at::Tensor& x01, int index) {
    at::NoGradGuard ng;
    sci::ModelOutput out = model_->Forward(ImagenetNormalize(sci::ToRgbFloat(x01, side_)));
    return out.layers[index].reshape({x01.size(0), -1}).to(at::kDouble);
  }
  // An image folder of `per_class` 24-px PNGs per class: class k's images
  // have brightness 0.15 + 0.7 k / (classes - 1) plus noise (separable).
  fs::path MakeImageFolder(int classes, int per_class) {
    const fs::path root = dir_ / "images";
    at::Generator gen = at::detail::createCPUGenerator(7);
    for (int c = 0; c < classes; ++c) {
      fs::create_directories(root / ("class" + std::to_string(c)));
      for (int i = 0; i < per_class; ++i) {
        const double level = 0.15 + 0.7 * c / std::max(1, classes - 1);
        at::Tensor img = (level + 0.1 * at::randn({24, 24, 3}, gen, at::kFloat)).clamp(0, 1);
        sci::WritePngRgb((root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + ".png")).string(),
                         (img * 255).round().to(at::kByte));
      }
    }
    return root;
  }
  fs::path dir_;
  int64_t side_ = 0;
  std::shared_ptr<sci::VisionModel> model_;
  RecordingReporter reporter_;
  JobContext ctx_;
};

TEST(PooledSideTest, FollowsTheDocumentedRule) {
  EXPECT_EQ(PooledSide(8, 6, 6, 0), 0);      // 0 = never pool
  EXPECT_EQ(PooledSide(8, 6, 6, 288), 0);    // fits exactly
  EXPECT_EQ(PooledSide(8, 6, 6, 287), 5);    // floor(sqrt(287/8)) = 5 -> 200 values
  EXPECT_EQ(PooledSide(8, 6, 6, 50), 2);     // floor(sqrt(6.25)) = 2 -> 32 values
  EXPECT_EQ(PooledSide(100, 4, 4, 50), 1);   // C alone exceeds: global average
}

// The schema (proto/config/schema_extract_analyses.cc) fills the documented
// defaults and rejects a relative path that leaves the inputs folder.
TEST(EncodingSchemaTest, DefaultsAndPathRules) {
  config::ParseOptions po;
  auto spec = config::ParseJobSpec(
      "kind: extract\nstimuli: []\nanalyses: [encoding, pca, linear_probe]\n"
      "encoding: {responses: neural/r.npy, stimuli_npy: /abs/s.npy}\n",
      po);
  ASSERT_OK(spec);
  EXPECT_EQ((*spec)["encoding"]["bootstrap"], 1000);
  EXPECT_EQ((*spec)["encoding"]["folds"], 0);
  EXPECT_EQ((*spec)["encoding"]["alphas"]["count"], 20);
  EXPECT_EQ((*spec)["pca"]["images"], 1000);
  EXPECT_EQ((*spec)["linear_probe"]["layers"], Json({"features"}));
  auto bad = config::ParseJobSpec("kind: extract\nstimuli: []\nanalyses: [encoding]\n"
                                  "encoding: {responses: neural/../../r.npy}\n",
                                  po);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("encoding.responses: relative path"), std::string::npos) << bad.status();
  auto folds = config::ParseJobSpec("kind: extract\nstimuli: []\nanalyses: [encoding]\n"
                                    "encoding: {responses: r.npy, folds: 1}\n",
                                    po);
  ASSERT_FALSE(folds.ok());
  EXPECT_NE(folds.status().message().find("encoding.folds"), std::string::npos) << folds.status();
}

// responses = block5 features @ W + Gaussian noise with var(signal) = 1 and
// noise sd 0.5 per unit, so the noise ceiling (r of the true signal with the
// observed responses) is sqrt(1 / 1.25) = 0.894.
TEST_F(EncodingAnalysisTest, PlantedLinearMappingScoresAtTheNoiseCeiling) {
  BuildExpansion();
  const int64_t n = 64, units = 60;
  at::Generator gen = at::detail::createCPUGenerator(11);
  at::Tensor stim = at::randint(0, 256, {n, 16, 16, 3}, gen, at::TensorOptions().dtype(at::kByte));
  sci::WriteNpy((dir_ / "inputs/neural/stimuli.npy").string(), stim);
  at::Tensor x = Direct(stim.permute({0, 3, 1, 2}), 4);  // block5: [n, 3]
  ASSERT_EQ(x.size(1), 3);
  at::Tensor w = at::randn({3, units}, gen, at::kDouble);
  at::Tensor signal = at::matmul(x - x.mean(0), w);
  signal = signal / signal.std(0, /*unbiased=*/false);  // var 1 per unit
  const double noise_sd = 0.5;
  at::Tensor y = 3.0 + signal + noise_sd * at::randn({n, units}, gen, at::kDouble);
  sci::WriteNpy((dir_ / "inputs/neural/responses.npy").string(), y.to(at::kFloat));
  const double ceiling = std::sqrt(1.0 / (1.0 + noise_sd * noise_sd));
  sci::WriteNpy((dir_ / "inputs/neural/ceiling.npy").string(), at::full({units}, ceiling, at::kDouble));

  ctx_.spec["analyses"] = {"encoding"};
  // Relative paths resolve under the job's inputs folder; the stimuli path
  // is absolute.
  ctx_.spec["encoding"] = {{"responses", "neural/responses.npy"},
                           {"stimuli_npy", (dir_ / "inputs/neural/stimuli.npy").string()},
                           {"ceiling", "neural/ceiling.npy"},
                           {"layers", {"block5", "block4"}},
                           {"max_features", 32},
                           {"folds", 4},
                           {"bootstrap", 200},
                           {"seed", 3}};
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json e = ReadJson(ctx_.out_dir / "encoding/encoding.json");
  const Json& b5 = e["layers"]["block5"];
  EXPECT_EQ(b5["n_features"], 3);
  EXPECT_EQ(b5["n_units"], units);
  EXPECT_NEAR(b5["median_r"].get<double>(), ceiling, 0.04) << b5.dump();
  EXPECT_NEAR(b5["median_r_normalized"].get<double>(), 1.0, 0.045) << b5.dump();
  EXPECT_EQ(b5["alpha"].size(), 4u);  // one LOO choice per fold
  EXPECT_LE(b5["bootstrap"]["ci_low"].get<double>(), b5["bootstrap"]["mean"].get<double>());
  EXPECT_GE(b5["bootstrap"]["ci_high"].get<double>(), b5["bootstrap"]["mean"].get<double>());
  EXPECT_NEAR(b5["bootstrap"]["mean"].get<double>(), ceiling, 0.05);
  // block4 (8 x 6 x 6) is pooled to 8 x 2 x 2 under max_features 32.
  EXPECT_EQ(e["layers"]["block4"]["pooled_to"], Json({2, 2}));
  EXPECT_EQ(e["layers"]["block4"]["n_features"], 32);
  EXPECT_EQ(e["best_layer"], "block5");
  at::Tensor r = sci::ReadNpy((ctx_.out_dir / "encoding/block5_r.npy").string());
  ASSERT_EQ(r.numel(), units);
  EXPECT_NEAR(at::quantile(r, 0.5).item<double>(), b5["median_r"].get<double>(), 1e-9);
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "encoding/block5_r_normalized.npy"));
  Json m = ReadJson(ctx_.out_dir / "metrics.json");
  EXPECT_EQ(m["analyses"]["encoding"]["layers"]["block5"]["median_r"], b5["median_r"]);
  EXPECT_NE(std::find(reporter_.artifacts.begin(), reporter_.artifacts.end(), "encoding/encoding.json"),
            reporter_.artifacts.end());
}

// Folder rows are the image files in byte-wise order of their relative
// path: responses planted exactly (no noise) on that order score r ~ 1.
TEST_F(EncodingAnalysisTest, ImageFolderRowsFollowSortedRelativePaths) {
  BuildExpansion();
  const fs::path folder = dir_ / "inputs/neural/stim";
  const std::vector<std::string> names = {"k.png", "b.png", "sub/a.png", "a.png", "c.jpg.png", "z/y.png",
                                          "m.png", "d.png", "sub/b.png", "e.png", "f.png", "g.png"};
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  at::Generator gen = at::detail::createCPUGenerator(5);
  std::map<std::string, at::Tensor> img;
  for (const auto& nm : names) {
    fs::create_directories((folder / nm).parent_path());
    at::Tensor t = at::randint(0, 256, {20, 20, 3}, gen, at::TensorOptions().dtype(at::kByte));
    sci::WritePngRgb((folder / nm).string(), t);
    img[nm] = t.permute({2, 0, 1});
  }
  std::vector<at::Tensor> rows;
  for (const auto& nm : sorted) rows.push_back(img[nm]);
  at::Tensor x = Direct(at::stack(rows), 4);
  at::Tensor y = at::matmul(x, at::randn({3, 5}, gen, at::kDouble));
  sci::WriteNpy((dir_ / "inputs/neural/r.npy").string(), y);
  ctx_.spec["analyses"] = {"encoding"};
  ctx_.spec["encoding"] = {{"responses", "neural/r.npy"}, {"images", "neural/stim"}, {"layers", {"block5"}},
                           {"train_fraction", 0.5}, {"bootstrap", 0}};
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json e = ReadJson(ctx_.out_dir / "encoding/encoding.json");
  EXPECT_EQ(e["stimuli"]["first"], "a.png");
  EXPECT_EQ(e["stimuli"]["last"], "z/y.png");
  EXPECT_EQ(e["split"]["test"], 6);
  EXPECT_GT(e["layers"]["block5"]["median_r"].get<double>(), 0.99) << e.dump();
  EXPECT_FALSE(e["layers"]["block5"].contains("bootstrap"));
}

TEST_F(EncodingAnalysisTest, InputErrorsNameKeyPathAndCounts) {
  BuildResNet();
  at::Tensor stim = at::zeros({10, 8, 8}, at::kByte);
  sci::WriteNpy((dir_ / "inputs/neural/s.npy").string(), stim);
  sci::WriteNpy((dir_ / "inputs/neural/r9.npy").string(), at::randn({9, 4}, at::kFloat));
  ctx_.spec["analyses"] = {"encoding"};

  ctx_.spec["encoding"] = {{"responses", "neural/r9.npy"}, {"stimuli_npy", "neural/s.npy"}};
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("9 rows"), std::string::npos) << s;
  EXPECT_NE(s.message().find("10 stimuli"), std::string::npos) << s;

  ctx_.spec["encoding"] = {{"responses", "neural/missing.npy"}, {"stimuli_npy", "neural/s.npy"}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("encoding.responses"), std::string::npos) << s;
  EXPECT_NE(s.message().find((dir_ / "inputs/neural/missing.npy").string()), std::string::npos) << s;

  {  // a truncated .npy: header intact, data cut short
    std::ifstream in(dir_ / "inputs/neural/r9.npy", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(dir_ / "inputs/neural/cut.npy", std::ios::binary);
    out << bytes.substr(0, bytes.size() - 20);
  }
  ctx_.spec["encoding"] = {{"responses", "neural/cut.npy"}, {"stimuli_npy", "neural/s.npy"}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("encoding.responses"), std::string::npos) << s;
  EXPECT_NE(s.message().find("cut.npy"), std::string::npos) << s;

  ctx_.spec["encoding"] = {{"responses", "../outside.npy"}, {"stimuli_npy", "neural/s.npy"}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("leaves the job's inputs folder"), std::string::npos) << s;

  ctx_.spec["encoding"] = {{"responses", "neural/r9.npy"}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("exactly one of"), std::string::npos) << s;

  sci::WriteNpy((dir_ / "inputs/neural/f.npy").string(), at::full({10, 8, 8}, 255.0, at::kFloat));
  ctx_.spec["encoding"] = {{"responses", "neural/r9.npy"}, {"stimuli_npy", "neural/f.npy"}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("[0, 1]"), std::string::npos) << s;

  ctx_.spec["encoding"] = {{"responses", "neural/r9.npy"}, {"stimuli_npy", "neural/s.npy"},
                           {"layers", {"block9"}}};
  sci::WriteNpy((dir_ / "inputs/neural/r9.npy").string(), at::randn({10, 4}, at::kFloat));
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("encoding.layers: unknown layer \"block9\""), std::string::npos) << s;
}

TEST_F(EncodingAnalysisTest, PcaMatchesADirectComputationOnTheSameActivations) {
  BuildResNet();
  const fs::path root = MakeImageFolder(2, 10);
  const Json data = {{"dataset", "image_folder"}, {"path", root.string()}, {"image_size", side_}};
  ctx_.spec["data"] = data;
  ctx_.spec["analyses"] = {"pca"};
  ctx_.spec["pca"] = {{"layers", {"layer1.0", "features"}}, {"images", 16}, {"seed", 2},
                      {"max_features", 256}, {"fit_min_rank", 1}, {"fit_max_rank", 6}};
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json p = ReadJson(ctx_.out_dir / "pca/pca.json");
  EXPECT_EQ(p["images"], 16);

  auto ds = sci::OpenDataset(data, "test");
  ASSERT_OK(ds);
  at::Tensor images = (*ds)->GetBatch(SeededSubset(20, 16, 2)).first;
  at::NoGradGuard ng;
  sci::ModelOutput out = model_->Forward(ImagenetNormalize(images));
  // layer1.0 (64 x 8 x 8) pooled to 64 x 2 x 2 by max_features 256.
  at::Tensor a = at::adaptive_avg_pool2d(out.layers[0], {2, 2}).reshape({16, -1}).to(at::kDouble);
  at::Tensor ac = a - a.mean(0);
  at::Tensor lam = at::linalg_eigvalsh(at::matmul(ac.t(), ac) / 15.0).flip({0}).clamp_min(0);
  const double pr = std::pow(lam.sum().item<double>(), 2) / lam.pow(2).sum().item<double>();
  const Json& l1 = p["layers"]["layer1.0"];
  EXPECT_EQ(l1["n_features"], 256);
  EXPECT_EQ(l1["pooled_to"], Json({2, 2}));
  EXPECT_NEAR(l1["effective_dimensionality"].get<double>(), pr, 1e-5 * pr);
  at::Tensor ev = sci::ReadNpy((ctx_.out_dir / "pca/layer1.0_eigenvalues.npy").string());
  ASSERT_EQ(ev.numel(), 15);  // min(n - 1, p)
  EXPECT_TRUE(at::allclose(ev, lam.narrow(0, 0, 15), 1e-4, 1e-8 * lam[0].item<double>()));
  const double cum2 = (lam[0] + lam[1]).item<double>() / lam.sum().item<double>();
  EXPECT_NEAR(l1["cumulative_explained_variance"][1].get<double>(), cum2, 1e-5);
  // Power law: least squares of log10 lambda on log10 rank over ranks 1..6.
  double mx = 0, my = 0, sxx = 0, sxy = 0;
  for (int k = 1; k <= 6; ++k) mx += std::log10(k) / 6, my += std::log10(lam[k - 1].item<double>()) / 6;
  for (int k = 1; k <= 6; ++k) {
    sxx += std::pow(std::log10(k) - mx, 2);
    sxy += (std::log10(k) - mx) * (std::log10(lam[k - 1].item<double>()) - my);
  }
  EXPECT_NEAR(l1["power_law"]["alpha"].get<double>(), -sxy / sxx, 1e-4);
  // "features" is flat (512 values): never pooled.
  EXPECT_EQ(p["layers"]["features"]["n_features"], 512);
  EXPECT_TRUE(p["layers"]["features"]["pooled_to"].is_null());
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "pca/spectrum.png"));
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "pca/cumulative.png"));
}

TEST_F(EncodingAnalysisTest, LinearProbeEqualsADirectProbeAndBeatsChance) {
  BuildResNet();
  const fs::path root = MakeImageFolder(3, 8);  // one folder: both splits
  const Json data = {{"dataset", "image_folder"}, {"path", root.string()}, {"image_size", side_}};
  ctx_.spec["data"] = data;
  ctx_.spec["analyses"] = {"linear_probe"};
  ctx_.spec["linear_probe"] = {{"train_images", 0}, {"test_images", 12}, {"seed", 4}};
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json j = ReadJson(ctx_.out_dir / "linear_probe/linear_probe.json");
  EXPECT_EQ(j["train_images"], 24);
  EXPECT_EQ(j["test_images"], 12);
  EXPECT_NEAR(j["chance"].get<double>(), 1.0 / 3, 1e-12);
  const Json& f = j["layers"]["features"];
  EXPECT_EQ(f["n_features"], 512);
  EXPECT_GT(f["test_accuracy"].get<double>(), 0.9) << j.dump();

  // The same probe called directly on the same images' features.
  auto ds = sci::OpenDataset(data, "train");
  ASSERT_OK(ds);
  std::vector<int64_t> all(24);
  for (int i = 0; i < 24; ++i) all[i] = i;
  auto feats = [&](const std::vector<int64_t>& idx) {
    at::NoGradGuard ng;
    auto [images, labels] = (*ds)->GetBatch(idx);
    return std::make_pair(model_->Forward(ImagenetNormalize(images)).features.to(at::kDouble), labels);
  };
  auto [x_tr, y_tr] = feats(all);
  auto [x_te, y_te] = feats(SeededSubset(24, 12, 4 + 1));
  auto direct = sci::LinearProbe(x_tr, y_tr, x_te, y_te, 3, sci::LogisticProbeOptions{});
  ASSERT_OK(direct);
  EXPECT_NEAR(f["train_accuracy"].get<double>(), direct->train_accuracy, 1e-12);
  EXPECT_NEAR(f["test_accuracy"].get<double>(), direct->test_accuracy, 1e-12);
  EXPECT_NEAR(f["train_loss"].get<double>(), direct->train_loss, 1e-4 * (1 + direct->train_loss));
  at::Tensor conf = sci::ReadNpy((ctx_.out_dir / "linear_probe/features_confusion.npy").string());
  EXPECT_EQ(conf.sum().item<int64_t>(), 12);
  EXPECT_TRUE(at::equal(conf, direct->confusion));
}

}  // namespace
}  // namespace topolab::worker
