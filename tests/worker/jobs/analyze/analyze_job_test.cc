// The analyze job end to end on tiny planted data: a grating response matrix
// whose units carry a planted pinwheel map with cosine tuning, and a
// category response matrix with one planted selective blob.
#include "worker/jobs/analyze/analyze_job.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "tests/worker/jobs/job_test_util.h"
#include "worker/science/io/npy.h"
#include "worker/science/stimuli/stimuli.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

class AnalyzeJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTestDir("analyze_job_test");
    fs::create_directories(dir_ / "out");
    ctx_.out_dir = dir_ / "out";
    ctx_.reporter = &reporter_;
  }
  // TOPOLAB_KEEP_TEST_OUTPUT=1 keeps the outputs (maps) for a look.
  void TearDown() override {
    if (std::getenv("TOPOLAB_KEEP_TEST_OUTPUT") == nullptr) fs::remove_all(dir_);
  }
  Json ReadMetrics() {
    std::ifstream f(ctx_.out_dir / "metrics.json");
    return Json::parse(f);
  }
  fs::path dir_;
  RecordingReporter reporter_;
  JobContext ctx_;
};

at::Tensor GridPositions(double step, double max) {
  at::Tensor g = at::arange(0, max + 1e-9, step, at::kDouble);
  return at::stack({g.repeat({g.size(0)}), g.repeat_interleave(g.size(0))}, 1);
}

TEST_F(AnalyzeJobTest, GratingsRecoverPlantedPinwheelsAndTuning) {
  // 101 x 101 units over 10 mm: dense enough that a 1.5 mm window holds
  // ~225 units, so the OFFICIAL heterogeneity rule (circular std / count <
  // 0.3) admits the pinwheel pixels.
  at::Tensor pos = GridPositions(0.1, 10);
  // Two planted pinwheels (+ at (2.63, 5.21), - at (7.37, 5.12)).
  at::Tensor th = (at::atan2(pos.select(1, 1) - 5.21, pos.select(1, 0) - 2.63) -
                   at::atan2(pos.select(1, 1) - 5.12, pos.select(1, 0) - 7.37)) *
                  (90.0 / M_PI);
  at::Tensor pref = at::remainder(th, 180.0);
  // Response of unit u to grating row r: 1 + cos(2 (theta_r - pref_u)).
  at::Tensor ori = sci::GratingFactorLabels("orientation").to(at::kDouble) * 22.5;
  at::Tensor acts = 1 + at::cos((ori.unsqueeze(1) - pref.unsqueeze(0)) * (M_PI / 90.0));
  sci::WriteNpy((dir_ / "A.npy").string(), acts.to(at::kFloat));
  sci::WriteNpy((dir_ / "P.npy").string(), pos.to(at::kFloat));
  ctx_.spec = {{"kind", "analyze"},
               {"inputs", {{"activations", (dir_ / "A.npy").string()},
                           {"positions", (dir_ / "P.npy").string()},
                           {"stimuli", "sine_gratings"}}},
               {"analysis", {{"opm_smoothness", {{"repetitions", 3}, {"sample_size", 600}}}}},
               {"batch_size", 100}};
  ASSERT_OK(MakeAnalyzeJob()->Run(ctx_));
  Json m = ReadMetrics();
  EXPECT_EQ(m["pinwheel_count"], 2);
  EXPECT_EQ(m["v1"]["pinwheels_positive"], 1);
  EXPECT_DOUBLE_EQ(m["selective_fraction"].get<double>(), 1.0);  // CV = 0.5 < 0.6 everywhere
  EXPECT_GT(m["opm_smoothness"].get<double>(), 0.5);
  EXPECT_TRUE(m["patches"].is_null());
  EXPECT_NEAR(m["pinwheel_density"].get<double>(), 2 / std::pow(10 / 3.5, 2), 1e-9);
  at::Tensor got = sci::ReadNpy((ctx_.out_dir / "preferred_orientation_deg.npy").string()).to(at::kDouble);
  at::Tensor d = (got - pref).abs();
  d = at::minimum(d, 180 - d);
  EXPECT_LT(d.max().item<double>(), 180.0 / 49 + 1e-6);
  at::Tensor cv = sci::ReadNpy((ctx_.out_dir / "circular_variance.npy").string());
  EXPECT_NEAR(cv.mean().item<float>(), 0.5f, 1e-4);
  for (const char* f : {"orientation_map.png", "orientation_scatter.png", "opm_smoothness.png"}) {
    EXPECT_TRUE(fs::exists(ctx_.out_dir / f)) << f;
  }
  EXPECT_EQ(reporter_.metrics["pinwheel_count"], 2);
  EXPECT_DOUBLE_EQ(reporter_.progress.back(), 1.0);
}

TEST_F(AnalyzeJobTest, CategoriesFindThePlantedPatch) {
  at::Tensor pos = GridPositions(1.5, 60);  // 41 x 41 units over 60 mm
  const int64_t n = 60, u = pos.size(0);
  at::manual_seed(0);
  at::Tensor labels = at::arange(n, at::kLong) % 3;  // categories a, b, c
  at::Tensor dx = pos.select(1, 0) - 20, dy = pos.select(1, 1) - 22;
  at::Tensor blob = (dx * dx + dy * dy <= 100).to(at::kDouble);  // radius 10 mm
  at::Tensor on = (labels == 0).to(at::kDouble);
  at::Tensor acts = 1 + 0.1 * at::randn({n, u}, at::kDouble) + 2 * on.unsqueeze(1) * blob.unsqueeze(0);
  sci::WriteNpy((dir_ / "A.npy").string(), acts.to(at::kHalf));  // float16 input works too
  sci::WriteNpy((dir_ / "P.npy").string(), pos.to(at::kFloat));
  sci::WriteNpy((dir_ / "L.npy").string(), labels.to(at::kInt));
  ctx_.spec = {{"kind", "analyze"},
               {"inputs", {{"activations", (dir_ / "A.npy").string()},
                           {"positions", (dir_ / "P.npy").string()},
                           {"stimuli", {{"labels", (dir_ / "L.npy").string()},
                                        {"categories", {"a", "b", "c"}},
                                        {"domains", {{"alpha", {"a"}}, {"beta", {"b"}}}}}}}},
               {"analysis", {{"category_smoothness", {{"repetitions", 3}}}}}};
  ASSERT_OK(MakeAnalyzeJob()->Run(ctx_));
  Json m = ReadMetrics();
  ASSERT_TRUE(m["patches"].is_object());
  EXPECT_EQ(m["patches"]["alpha"]["count"], 1);
  EXPECT_EQ(m["patches"]["beta"]["count"], 0);
  double area = m["patches"]["alpha"]["areas_mm2"][0].get<double>();
  EXPECT_GT(area, 250);   // smoothed disc of radius 10 above t = 2
  EXPECT_LT(area, 1000);
  EXPECT_TRUE(m["opm_smoothness"].is_null());
  EXPECT_TRUE(m["category_smoothness"]["alpha"].is_number());
  at::Tensor t = sci::ReadNpy((ctx_.out_dir / "t_alpha.npy").string());
  ASSERT_EQ(t.size(0), u);
  const int64_t centre = static_cast<int64_t>(std::lround(22 / 1.5)) * 41 + static_cast<int64_t>(std::lround(20 / 1.5));
  EXPECT_GT(t[centre].item<float>(), 10.0f);
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "selectivity_alpha.png"));
  EXPECT_TRUE(fs::exists(ctx_.out_dir / "rsm.npy"));
}

TEST_F(AnalyzeJobTest, BadInputsNameTheField) {
  at::Tensor acts = at::rand({10, 4});
  sci::WriteNpy((dir_ / "A.npy").string(), acts);
  sci::WriteNpy((dir_ / "P.npy").string(), at::rand({5, 2}));
  ctx_.spec = {{"kind", "analyze"},
               {"inputs", {{"activations", (dir_ / "A.npy").string()},
                           {"positions", (dir_ / "P.npy").string()}}}};
  absl::Status s = MakeAnalyzeJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("inputs.positions"), std::string::npos) << s;
  sci::WriteNpy((dir_ / "P.npy").string(), at::rand({4, 2}));
  s = MakeAnalyzeJob()->Run(ctx_);  // 10 rows are not 640 gratings
  EXPECT_NE(s.message().find("640"), std::string::npos) << s;
  ctx_.spec["inputs"]["activations"] = (dir_ / "missing.npy").string();
  s = MakeAnalyzeJob()->Run(ctx_);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(ctx_.out_dir / "metrics.json"));
}

}  // namespace
}  // namespace topolab::worker
