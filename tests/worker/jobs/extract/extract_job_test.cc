// The extract job on a tiny randomly initialised ResNet-18 checkpoint at
// 32 px: streamed activations (row order, float16), stimuli.json, metrics
// keys, PNGs, positions_from, and errors naming the problem.
#include "worker/jobs/extract/extract_job.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include "tests/test_util.h"
#include "tests/worker/jobs/job_test_util.h"
#include "worker/science/data/dataset.h"
#include "worker/science/io/npy.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"
#include "worker/science/stimuli/stimuli.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

class ExtractJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTestDir("extract_job_test");
    fs::create_directories(dir_ / "out");
    at::manual_seed(0);
    auto model = sci::MakeModel({{"family", "resnet18"}}, 10);
    ASSERT_OK(model);
    model_ = *model;
    Json meta = {{"model", {{"family", "resnet18"}}},
                 {"num_classes", 10},
                 {"image_size", 32},
                 {"data", {{"dataset", "fashion_mnist"}, {"image_size", 32}}}};
    ASSERT_OK(sci::SaveCheckpoint((dir_ / "inputs/train/checkpoints/final.pt").string(), *model_,
                                  nullptr, 5, meta));
    ctx_.out_dir = dir_ / "out";
    ctx_.inputs_dir = dir_ / "inputs";
    ctx_.reporter = &reporter_;
    ctx_.spec = {{"kind", "extract"},
                 {"needs", {"train"}},
                 {"stimuli", {"sine_gratings"}},
                 {"float16", true},
                 {"batch_size", 100},
                 {"wiring", {{"enabled", false}}},
                 {"analysis",
                  {{"opm_smoothness", {{"repetitions", 2}, {"sample_size", 300}}},
                   {"category_smoothness", {{"repetitions", 2}}},
                   {"preferred", "argmax"}}}};
  }
  // TOPOLAB_KEEP_TEST_OUTPUT=1 keeps the outputs (maps) for a look.
  void TearDown() override {
    if (std::getenv("TOPOLAB_KEEP_TEST_OUTPUT") == nullptr) fs::remove_all(dir_);
  }
  Json ReadJson(const fs::path& p) {
    std::ifstream f(p);
    return Json::parse(f);
  }
  fs::path dir_;
  std::shared_ptr<sci::VisionModel> model_;
  RecordingReporter reporter_;
  JobContext ctx_;
};

TEST_F(ExtractJobTest, GratingsStreamActivationsInRowOrder) {
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  const fs::path out = ctx_.out_dir;
  Json stim = ReadJson(out / "sine_gratings/stimuli.json");
  ASSERT_EQ(stim["rows"].size(), 640u);
  at::Tensor a = sci::ReadNpy((out / "sine_gratings/layer2.0.npy").string());
  EXPECT_EQ(a.scalar_type(), at::kHalf);
  ASSERT_EQ(a.dim(), 2);
  EXPECT_EQ(a.size(0), 640);
  // Row 333 is grating 333: compare with a direct forward pass.
  model_->eval();
  at::NoGradGuard ng;
  sci::GratingOptions go;
  go.image_size = 32;
  at::Tensor img = sci::GratingSet(go).Images(333, 1);
  at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, at::kFloat).view({1, 3, 1, 1});
  at::Tensor sd = at::tensor({0.229, 0.224, 0.225}, at::kFloat).view({1, 3, 1, 1});
  at::Tensor want = model_->Forward((img - mean) / sd).layers[2].reshape({-1});
  EXPECT_EQ(a.size(1), want.size(0));
  EXPECT_TRUE(at::allclose(a[333].to(at::kFloat), want, 1e-2, 1e-2));
  EXPECT_TRUE(fs::exists(out / "sine_gratings/layer4.1.npy"));
  Json m = ReadJson(out / "metrics.json");
  for (const char* k : {"opm_smoothness", "pinwheel_count", "pinwheel_density", "selective_fraction"}) {
    EXPECT_TRUE(m.contains(k)) << k;
  }
  EXPECT_TRUE(m["pinwheel_count"].is_number());
  EXPECT_EQ(m["v1"]["layer"], "layer2.0");
  EXPECT_EQ(m["layers"]["layer2.0"]["positions"], "fresh_sheet");
  at::Tensor pref = sci::ReadNpy((out / "preferred_orientation_deg.npy").string());
  EXPECT_EQ(pref.size(0), a.size(1));
  EXPECT_TRUE(fs::exists(out / "orientation_map.png"));
  EXPECT_NE(std::find(reporter_.artifacts.begin(), reporter_.artifacts.end(), "metrics.json"),
            reporter_.artifacts.end());
}

TEST_F(ExtractJobTest, CategoriesAndWiringOnFashionMnist) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  ctx_.spec["stimuli"] = {"categories"};
  ctx_.spec["categories"] = {{"per_category", 6}};
  ctx_.spec["save_activations"] = false;
  ctx_.spec["wiring"] = {{"enabled", true}, {"images", 6}};
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json stim = ReadJson(ctx_.out_dir / "categories/stimuli.json");
  ASSERT_EQ(stim["rows"].size(), 60u);
  EXPECT_EQ(stim["domains"].size(), 5u);
  EXPECT_FALSE(fs::exists(ctx_.out_dir / "categories/layer4.1.npy"));
  Json m = ReadJson(ctx_.out_dir / "metrics.json");
  ASSERT_TRUE(m["patches"].is_object());
  for (const char* d : {"tops", "outerwear", "long_shapes", "shoes", "boots_bags"}) {
    EXPECT_TRUE(m["patches"].contains(d)) << d;
    EXPECT_TRUE(fs::exists(ctx_.out_dir / (std::string("t_") + d + ".npy"))) << d;
  }
  EXPECT_TRUE(m["category_smoothness"].contains("mean"));
  EXPECT_TRUE(m["opm_smoothness"].is_null());
  EXPECT_EQ(m["wiring"]["v1"]["source"], "layer2.0");
  EXPECT_EQ(m["wiring"]["vtc"]["target"], "layer4.1");
}

TEST_F(ExtractJobTest, UsesPositionsFromAStageAndChecksTheirShape) {
  // layer2.0 at 32 px is 128 x 4 x 4 = 2048 units.
  fs::create_directories(dir_ / "inputs/swap/positions");
  at::Tensor pos = at::rand({2048, 2}) * 36.75;
  sci::WriteNpy((dir_ / "inputs/swap/positions/layer2.0.npy").string(), pos);
  ctx_.spec["positions_from"] = "swap";
  ctx_.spec["save_activations"] = false;
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  Json m = ReadJson(ctx_.out_dir / "metrics.json");
  EXPECT_EQ(m["layers"]["layer2.0"]["positions"], "positions_from:swap");
  sci::WriteNpy((dir_ / "inputs/swap/positions/layer2.0.npy").string(), at::rand({100, 2}));
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("layer2.0"), std::string::npos);
}

TEST_F(ExtractJobTest, ErrorsNameTheProblem) {
  ctx_.spec["layers"] = {"layer9.9"};
  absl::Status s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layer9.9"), std::string::npos) << s;
  ctx_.spec.erase("layers");
  ctx_.spec["needs"] = {"nothing"};
  s = MakeExtractJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  // Without needs, the single input stage holding checkpoints/ is used.
  ctx_.spec.erase("needs");
  ctx_.spec["stimuli"] = {"sine_gratings"};
  ctx_.spec["save_activations"] = false;
  ctx_.spec["analysis"]["write_pngs"] = false;
  ASSERT_OK(MakeExtractJob()->Run(ctx_));
  EXPECT_FALSE(fs::exists(ctx_.out_dir / "orientation_map.png"));
  reporter_.cancel = true;
  EXPECT_EQ(MakeExtractJob()->Run(ctx_).code(), absl::StatusCode::kCancelled);
}

TEST(NpyStreamTest, AppendedBatchesRoundTrip) {
  fs::path p = fs::temp_directory_path() / ("npy_stream_" + std::to_string(::getpid()) + ".npy");
  at::Tensor full = at::randn({37, 5});
  {
    sci::NpyStreamWriter w(p.string(), at::kHalf, {5});
    for (int64_t s = 0; s < 37; s += 10) w.Append(full.narrow(0, s, std::min<int64_t>(10, 37 - s)));
    w.Close();
  }
  at::Tensor back = sci::ReadNpy(p.string());
  EXPECT_EQ(back.scalar_type(), at::kHalf);
  EXPECT_TRUE(at::allclose(back.to(at::kFloat), full.to(at::kHalf).to(at::kFloat)));
  fs::remove(p);
}

}  // namespace
}  // namespace topolab::worker
