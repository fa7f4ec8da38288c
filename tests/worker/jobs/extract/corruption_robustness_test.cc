// The corruption_robustness extract analysis, run through the extract job
// in-process on a tiny V1 ResNet (composite_a, ResNet-mini widths, 32 px)
// whose head is a nearest-class-centroid readout of its random features (so
// its clean accuracy is far above chance and any mistake in labels or
// preprocessing shows): files, cells, the clean accuracy against a direct
// evaluation, an image-folder test set, cancellation and errors.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include "tests/test_util.h"
#include "tests/worker/jobs/job_test_util.h"
#include "worker/jobs/extract/extract_job.h"
#include "worker/science/data/dataset.h"
#include "worker/science/io/png.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

const Json kModel = {{"family", "v1resnet"}, {"variant", "composite_a"}, {"image_size", 32},
                     {"width_divisor", 8}, {"depth", "mini"}};

class CorruptionRobustnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(2);
    dir_ = FreshTestDir("corruption_robustness_test");
    fs::create_directories(dir_ / "out");
    ctx_.out_dir = dir_ / "out";
    ctx_.inputs_dir = dir_ / "inputs";
    ctx_.reporter = &reporter_;
    ctx_.spec = {{"kind", "extract"},
                 {"needs", {"train"}},
                 {"stimuli", Json::array()},
                 {"analyses", {"corruption_robustness"}},
                 {"batch_size", 100},
                 {"wiring", {{"enabled", false}}},
                 {"corruption_robustness", {{"images", 0}, {"corruptions", {"frost", "gaussian_noise"}}}}};
  }
  void TearDown() override {
    if (std::getenv("TOPOLAB_KEEP_TEST_OUTPUT") == nullptr) fs::remove_all(dir_);
  }

  // Saves inputs/train/checkpoints/final.pt: a composite_a mini model whose
  // fc is the nearest-centroid classifier of `train`'s images (features of
  // ImageNet-normalised input), with `meta` as checkpoint metadata.
  void SaveModel(const sci::ImageDataset* train, int64_t num_classes, const Json& meta) {
    at::manual_seed(0);
    auto model = sci::MakeModel(kModel, num_classes);
    ASSERT_OK(model);
    model_ = *model;
    model_->eval();
    if (train != nullptr) {
      at::NoGradGuard ng;
      std::vector<int64_t> idx(train->size());
      for (int64_t i = 0; i < train->size(); ++i) idx[i] = i;
      auto [images, labels] = train->GetBatch(idx);
      at::Tensor f = model_->Forward(ImagenetNormalize(images)).features;
      at::Tensor w = at::zeros({num_classes, f.size(1)});
      w.index_add_(0, labels, f);
      w = w / at::bincount(labels, {}, num_classes).clamp_min(1).unsqueeze(1).to(at::kFloat);
      for (auto& p : model_->named_parameters()) {
        if (p.key() == "fc.weight") p.value().copy_(w);
        if (p.key() == "fc.bias") p.value().copy_(-0.5 * (w * w).sum(1));
      }
    }
    ASSERT_OK(sci::SaveCheckpoint((dir_ / "inputs/train/checkpoints/final.pt").string(), *model_, nullptr, 1,
                                  meta));
  }

  Json ReadJson(const fs::path& p) {
    std::ifstream f(p);
    return Json::parse(f);
  }
  std::vector<std::string> ReadLines(const fs::path& p) {
    std::ifstream f(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(f, l);) lines.push_back(l);
    return lines;
  }

  fs::path dir_;
  std::shared_ptr<sci::VisionModel> model_;
  RecordingReporter reporter_;
  JobContext ctx_;
};

TEST_F(CorruptionRobustnessTest, FashionMnistCellsFilesAndCleanAccuracyOfTheModel) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const Json data = {{"dataset", "fashion_mnist"}, {"image_size", 32}, {"train_subset", 300}, {"test_subset", 60}};
  auto train = sci::OpenDataset(data, "train");
  ASSERT_OK(train);
  Json meta = {{"model", kModel}, {"num_classes", 10}, {"image_size", 32}, {"data", data},
               {"class_names", (*train)->class_names()}};
  SaveModel(train->get(), 10, meta);
  ASSERT_OK(MakeExtractJob()->Run(ctx_));

  // The clean accuracy is the model's own accuracy on the same 60 images.
  auto test = sci::OpenDataset(data, "test");
  ASSERT_OK(test);
  std::vector<int64_t> idx(60);
  for (int64_t i = 0; i < 60; ++i) idx[i] = i;
  auto [images, labels] = (*test)->GetBatch(idx);
  double direct = 0;
  {
    at::NoGradGuard ng;
    at::Tensor pred = model_->Forward(ImagenetNormalize(images)).logits.argmax(1);
    direct = (pred == labels).to(at::kDouble).mean().item<double>();
  }
  EXPECT_GT(direct, 0.3) << "the centroid readout should be far above chance (0.1)";

  const fs::path out = ctx_.out_dir / "corruption_robustness";
  Json m = ReadJson(ctx_.out_dir / "metrics.json")["analyses"]["corruption_robustness"];
  EXPECT_DOUBLE_EQ(m["clean_accuracy"].get<double>(), direct);
  EXPECT_EQ(m["images"], 60);
  EXPECT_EQ(m["corruptions"], Json({"frost", "gaussian_noise"}));
  EXPECT_NEAR(m["relative"].get<double>(), m["mean_accuracy"].get<double>() / direct, 1e-12);

  Json r = ReadJson(out / "robustness.json");
  double sum = 0;
  for (const char* c : {"frost", "gaussian_noise"}) {
    ASSERT_EQ(r["accuracy"][c].size(), 5u) << c;
    double row = 0;
    for (const auto& a : r["accuracy"][c]) {
      EXPECT_GE(a.get<double>(), 0.0);
      EXPECT_LE(a.get<double>(), 1.0);
      // Accuracies are counts out of 60 images.
      EXPECT_NEAR(a.get<double>() * 60, std::round(a.get<double>() * 60), 1e-9);
      row += a.get<double>();
    }
    EXPECT_NEAR(r["mean_per_corruption"][c].get<double>(), row / 5, 1e-12);
    EXPECT_NEAR(m["mean_per_corruption"][c].get<double>(), row / 5, 1e-12);
    sum += row;
  }
  EXPECT_NEAR(r["mean_accuracy"].get<double>(), sum / 10, 1e-12);
  EXPECT_EQ(r["test_set"]["size"], 60);

  std::vector<std::string> csv = ReadLines(out / "robustness.csv");
  ASSERT_EQ(csv.size(), 11u);
  EXPECT_EQ(csv[0], "corruption,severity,accuracy");
  EXPECT_EQ(csv[1].rfind("frost,1,", 0), 0u) << csv[1];
  EXPECT_EQ(csv[10].rfind("gaussian_noise,5,", 0), 0u) << csv[10];
  const double cell = std::stod(csv[3].substr(csv[3].rfind(',') + 1));
  EXPECT_NEAR(cell, r["accuracy"]["frost"][2].get<double>(), 1e-6);

  // Heat map: 2 rows; examples: clean + 2 corruptions, 6 images each.
  EXPECT_GT(sci::ReadPngRgb((out / "robustness.png").string()).size(0), 100);
  at::Tensor ex = sci::ReadPngRgb((out / "examples.png").string());
  EXPECT_EQ(ex.size(0), 40 + 3 * (32 * 4 + 4) + 8);
  for (const char* f : {"robustness.json", "robustness.csv", "robustness.png", "examples.png"}) {
    const std::string a = std::string("corruption_robustness/") + f;
    EXPECT_NE(std::find(reporter_.artifacts.begin(), reporter_.artifacts.end(), a), reporter_.artifacts.end()) << a;
  }
  bool logged = false;
  for (const auto& l : reporter_.logs) logged = logged || l.find("frost (1/2)") != std::string::npos;
  EXPECT_TRUE(logged);

  // Same spec, same numbers; a subset of severities gives those cells only.
  const Json first = r;
  ctx_.spec["corruption_robustness"]["severities"] = {4, 2};
  ctx_.spec["corruption_robustness"]["images"] = 20;
  ctx_.spec["corruption_robustness"]["examples"] = 0;
  fs::remove_all(out);
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json r2 = ReadJson(out / "robustness.json");
  EXPECT_EQ(r2["severities"], Json({2, 4}));
  EXPECT_EQ(r2["images"], 20);
  EXPECT_EQ(ReadLines(out / "robustness.csv").size(), 5u);
  EXPECT_FALSE(fs::exists(out / "examples.png"));
}

TEST_F(CorruptionRobustnessTest, ImageFolderTestSet) {
  // Two classes, three images each: dark ones and bright ones.
  const fs::path folder = dir_ / "images";
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(folder / (c == 0 ? "dark" : "bright"));
    for (int i = 0; i < 3; ++i) {
      at::Tensor img = (at::rand({40, 40, 3}) * 100 + (c == 0 ? 0 : 150)).to(at::kByte);
      sci::WritePngRgb((folder / (c == 0 ? "dark" : "bright") / ("im" + std::to_string(i) + ".png")).string(), img);
    }
  }
  const Json data = {{"dataset", "image_folder"}, {"path", folder.string()}, {"image_size", 32}};
  auto train = sci::OpenDataset(data, "train");
  ASSERT_OK(train);
  EXPECT_EQ((*train)->size(), 6);
  SaveModel(train->get(), 2, {{"model", kModel}, {"num_classes", 2}, {"image_size", 32}, {"data", data},
                              {"class_names", (*train)->class_names()}});
  ctx_.spec["corruption_robustness"] = {{"corruptions", {"fog"}}, {"severities", {1, 5}}, {"examples", 3}};
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json r = ReadJson(ctx_.out_dir / "corruption_robustness/robustness.json");
  EXPECT_EQ(r["images"], 6);
  EXPECT_EQ(r["clean_accuracy"], 1.0) << "centroids separate dark from bright";
  EXPECT_EQ(r["accuracy"]["fog"].size(), 2u);
  EXPECT_EQ(r["test_set"]["dataset"], "image_folder");
}

TEST_F(CorruptionRobustnessTest, CancelledBetweenCorruptions) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const Json data = {{"dataset", "fashion_mnist"}, {"image_size", 32}, {"test_subset", 10}};
  SaveModel(nullptr, 10, {{"model", kModel}, {"num_classes", 10}, {"image_size", 32}, {"data", data}});
  // Call 1: the job, before the analysis; 2: before frost; 3: before
  // gaussian_noise -> cancelled.
  reporter_.cancel_at = 3;
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(reporter_.cancel_calls, 3);
}

TEST_F(CorruptionRobustnessTest, ErrorsNameTheProblem) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const Json data = {{"dataset", "fashion_mnist"}, {"image_size", 32}, {"test_subset", 10}};
  SaveModel(nullptr, 10, {{"model", kModel}, {"num_classes", 10}, {"image_size", 32}, {"data", data}});
  struct Case {
    Json options;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{{"corruptions", {"fog", "hail"}}}, "corruption_robustness.corruptions[1]: unknown corruption \"hail\""},
      {{{"corruptions", {"fog", "fog"}}}, "corruption_robustness.corruptions[1]: duplicate"},
      {{{"corruptions", Json::array()}}, "corruption_robustness.corruptions: must not be empty"},
      {{{"corruptions", "fog"}}, "corruption_robustness.corruptions: must be a list"},
      {{{"severities", {1, 6}}}, "corruption_robustness.severities[1]: must be an integer in 1..5, got 6"},
      {{{"severities", {"2"}}}, "corruption_robustness.severities[0]: must be an integer in 1..5"},
      {{{"images", -1}}, "corruption_robustness.images: must be an integer >= 0, got -1"},
      {{{"seed", 1.5}}, "corruption_robustness.seed: must be an integer >= 0"},
      {{{"imagez", 3}}, "corruption_robustness.imagez: unknown key"},
      {Json(7), "corruption_robustness: must be a mapping"},
  };
  for (const Case& c : cases) {
    ctx_.spec["corruption_robustness"] = c.options;
    absl::Status s = MakeExtractJob()->Run(ctx_);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(c.want), std::string::npos) << s << "\nwant: " << c.want;
  }
  EXPECT_FALSE(fs::exists(ctx_.out_dir / "corruption_robustness/robustness.json"));

  // Checkpoint trained on other classes: its labels would be misread.
  ctx_.spec["corruption_robustness"] = {{"corruptions", {"fog"}}};
  SaveModel(nullptr, 10, {{"model", kModel}, {"num_classes", 10}, {"image_size", 32}, {"data", data},
                          {"class_names", {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}});
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("not the classes the checkpoint was trained on"), std::string::npos) << s;

  // A head too small for the test set's labels.
  SaveModel(nullptr, 3, {{"model", kModel}, {"num_classes", 3}, {"image_size", 32}, {"data", data}});
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("10 classes"), std::string::npos) << s;

  // A missing test set is the data set's NotFound, prefixed.
  ctx_.spec["data"] = {{"dataset", "image_folder"}, {"path", (dir_ / "nowhere").string()}, {"image_size", 32}};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("corruption_robustness: data: "), std::string::npos) << s;
}

TEST_F(CorruptionRobustnessTest, ModelWithoutHeadIsFailedPrecondition) {
  const Json data = {{"dataset", "fashion_mnist"}, {"image_size", 32}, {"test_subset", 10}};
  SaveModel(nullptr, 0, {{"model", kModel}, {"num_classes", 0}, {"image_size", 32}, {"data", data}});
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("no classifier head"), std::string::npos) << s;
}

}  // namespace
}  // namespace topolab::worker
