// The `swapopt` job kind end to end: standalone .npy mode (the documented
// `topolab-worker run-job` use) and pipeline mode from a real checkpoint.
#include "worker/jobs/swapopt/swapopt_job.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/utils.h>
#include <unistd.h>

#include "proto/config/experiment_config.h"
#include "tests/test_util.h"
#include "worker/science/io/npy.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class FakeReporter : public JobReporter {
 public:
  void Log(const std::string& line) override { logs.push_back(line); }
  void Progress(double f) override {
    EXPECT_GE(f, last_progress);
    last_progress = f;
  }
  void Metrics(int64_t, const std::map<std::string, double>& v) override {
    for (const auto& [k, x] : v) metrics[k] = x;
  }
  void ArtifactReady(const std::string& p) override { artifacts.insert(p); }
  bool CancelRequested() override { return cancel; }

  std::vector<std::string> logs;
  std::map<std::string, double> metrics;
  std::set<std::string> artifacts;
  double last_progress = 0;
  bool cancel = false;
};

class SwapoptJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("swapopt_job_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::Status RunSpec(const std::string& yaml, FakeReporter& rep, const fs::path& out) {
    absl::StatusOr<Json> spec = config::ParseJobSpec(yaml, config::ParseOptions());
    if (!spec.ok()) return spec.status();
    JobContext ctx;
    ctx.spec = *spec;
    ctx.out_dir = out;
    ctx.inputs_dir = dir_ / "inputs";
    ctx.threads = 2;
    ctx.reporter = &rep;
    fs::create_directories(out);
    return MakeSwapoptJob()->Run(ctx);
  }

  // Smooth planted responses on a 16x16 lattice, positions scrambled.
  void WritePlanted() {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
    at::Tensor g = at::arange(16, at::kFloat);
    at::Tensor pos = at::stack({g.repeat({16}), g.repeat_interleave(16)}, 1);
    at::Tensor centres = at::rand({16, 2}, gen) * 16.0;
    at::Tensor basis = at::exp(-(pos.unsqueeze(1) - centres.unsqueeze(0)).pow(2).sum(-1) / 8.0);
    at::Tensor resp = at::randn({48, 16}, gen).matmul(basis.t()).contiguous();
    at::Tensor scrambled = pos.index_select(0, at::randperm(256, gen, at::kLong)).contiguous();
    science::WriteNpy((dir_ / "R.npy").string(), resp);
    science::WriteNpy((dir_ / "P.npy").string(), scrambled);
    positions_ = scrambled;
  }

  fs::path dir_;
  at::Tensor positions_;
};

TEST_F(SwapoptJobTest, StandaloneWritesPermutedPositionsPoolAndMetrics) {
  WritePlanted();
  FakeReporter rep;
  const std::string yaml = "kind: swapopt\n"
                           "inputs: {responses: " + (dir_ / "R.npy").string() +
                           ", positions: " + (dir_ / "P.npy").string() + "}\n"
                           "swapopt: {neighborhoods: 1500, swaps_per_neighborhood: 200, "
                           "width_mm: 5.0, max_units: 500, seed: 3, pool_windows: 300}\n";
  ASSERT_OK(RunSpec(yaml, rep, dir_ / "out"));
  at::Tensor out = science::ReadNpy((dir_ / "out" / "positions.npy").string());
  ASSERT_EQ(out.sizes(), positions_.sizes());
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  // A permutation of the input rows (sort by x + 1000 y: lattice points).
  auto key = [](const at::Tensor& p) {
    return std::get<0>((p.select(1, 0) + 1000 * p.select(1, 1)).sort());
  };
  EXPECT_TRUE(at::equal(key(out), key(positions_)));
  EXPECT_FALSE(at::equal(out, positions_));
  at::Tensor pool = science::ReadNpy((dir_ / "out" / "neighborhoods.npy").string());
  EXPECT_EQ(pool.scalar_type(), at::kLong);
  EXPECT_EQ(pool.dim(), 2);
  EXPECT_EQ(pool.size(1), 25);   // 5 mm windows on a 1 mm lattice: 25..36 units
  std::ifstream f(dir_ / "out" / "metrics.json");
  Json m = Json::parse(f);
  const Json& l = m["layers"]["input"];
  EXPECT_EQ(l["units"], 256);
  EXPECT_EQ(l["windows"], 1500);
  EXPECT_LT(l["mean_cost_after"].get<double>(), l["mean_cost_before"].get<double>());
  EXPECT_LT(l["eval_cost_after"].get<double>(), l["eval_cost_before"].get<double>());
  EXPECT_GT(l["swaps_accepted"].get<int64_t>(), 0);
  EXPECT_EQ(m["settings"]["accept"], "strict");
  EXPECT_EQ(m["settings"]["cost"], "two_row");
  EXPECT_TRUE(rep.artifacts.count("positions.npy"));
  EXPECT_TRUE(rep.artifacts.count("metrics.json"));
  EXPECT_TRUE(rep.metrics.count("input/cost_after"));
  EXPECT_DOUBLE_EQ(rep.last_progress, 1.0);

  // Same seed, same result; the REPRO options are accepted.
  FakeReporter rep2;
  ASSERT_OK(RunSpec(yaml, rep2, dir_ / "out2"));
  EXPECT_TRUE(at::equal(out, science::ReadNpy((dir_ / "out2" / "positions.npy").string())));
  FakeReporter rep3;
  std::string repro = yaml;
  repro.replace(repro.find("seed: 3"), 7, "seed: 3, accept: nonworse, cost: full_window");
  ASSERT_OK(RunSpec(repro, rep3, dir_ / "out3"));
  std::ifstream f3(dir_ / "out3" / "metrics.json");
  EXPECT_EQ(Json::parse(f3)["settings"]["accept"], "nonworse");
}

TEST_F(SwapoptJobTest, StandaloneRejectsBadInputs) {
  WritePlanted();
  FakeReporter rep;
  const std::string base = "kind: swapopt\ninputs: {responses: " + (dir_ / "R.npy").string() +
                           ", positions: ";
  // No width.
  absl::Status s = RunSpec(base + (dir_ / "P.npy").string() + "}\n", rep, dir_ / "o1");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("width_mm"), std::string::npos) << s;
  // Positions of the wrong unit count.
  science::WriteNpy((dir_ / "bad.npy").string(), at::zeros({10, 2}));
  s = RunSpec(base + (dir_ / "bad.npy").string() + "}\nswapopt: {width_mm: 2}\n", rep, dir_ / "o2");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("inputs.positions"), std::string::npos) << s;
  // Missing file.
  s = RunSpec(base + (dir_ / "nope.npy").string() + "}\nswapopt: {width_mm: 2}\n", rep,
              dir_ / "o3");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  // Cancelled.
  FakeReporter cancelled;
  cancelled.cancel = true;
  s = RunSpec(base + (dir_ / "P.npy").string() + "}\nswapopt: {width_mm: 2, neighborhoods: 100000}\n",
              cancelled, dir_ / "o4");
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
}

TEST_F(SwapoptJobTest, PipelineFromCheckpointWritesEveryRequestedLayer) {
  torch::manual_seed(0);
  const Json model_spec = {{"family", "resnet18"}};
  auto model = science::MakeModel(model_spec, 10);
  ASSERT_OK(model.status());
  const fs::path ckpt = dir_ / "inputs" / "pre" / "checkpoints" / "final.pt";
  ASSERT_OK(science::SaveCheckpoint(ckpt.string(), **model, nullptr, 7,
                                    {{"model", model_spec}, {"image_size", 32},
                                     {"num_classes", 10}}));
  FakeReporter rep;
  const std::string yaml = "kind: swapopt\nneeds: [pre]\n"
                           "swapopt: {neighborhoods: 60, swaps_per_neighborhood: 50, "
                           "layers: [layer3.0, layer4.1], pool_windows: 200, eval_windows: 20}\n";
  ASSERT_OK(RunSpec(yaml, rep, dir_ / "out"));
  for (const char* layer : {"layer3.0", "layer4.1"}) {
    SCOPED_TRACE(layer);
    const int64_t units = std::string(layer) == "layer3.0" ? 256 * 2 * 2 : 512;
    at::Tensor p = science::ReadNpy((dir_ / "out" / "positions" / (std::string(layer) + ".npy")).string());
    EXPECT_EQ(p.sizes(), (std::vector<int64_t>{units, 2}));
    at::Tensor p0 =
        science::ReadNpy((dir_ / "out" / "positions_initial" / (std::string(layer) + ".npy")).string());
    EXPECT_EQ(p0.sizes(), p.sizes());
    at::Tensor nb =
        science::ReadNpy((dir_ / "out" / "neighborhoods" / (std::string(layer) + ".npy")).string());
    EXPECT_EQ(nb.scalar_type(), at::kLong);
    EXPECT_GT(nb.size(0), 0);
    EXPECT_LT(nb.max().item<int64_t>(), units);
  }
  EXPECT_FALSE(fs::exists(dir_ / "out" / "positions" / "layer1.0.npy"));
  std::ifstream f(dir_ / "out" / "metrics.json");
  Json m = Json::parse(f);
  EXPECT_EQ(m["mode"], "pipeline");
  EXPECT_EQ(m["image_size"], 32);
  // layer3.0 at 32 px is 2x2: ov = 1, so one hypercolumn spans the V2 sheet.
  EXPECT_NEAR(m["layers"]["layer3.0"]["width_mm"].get<double>(), 35.0, 1e-9);
  EXPECT_NEAR(m["layers"]["layer3.0"]["side_mm"].get<double>(), 35.0, 1e-9);
  EXPECT_EQ(m["layers"]["layer4.1"]["shape"], Json({512, 1, 1}));
  EXPECT_EQ(m["layers"]["layer4.1"]["images"], 640);

  // Chaining: start from those positions, unknown layers are rejected.
  fs::create_directories(dir_ / "inputs" / "prev");
  fs::rename(dir_ / "out" / "positions", dir_ / "inputs" / "prev" / "positions");
  FakeReporter rep2;
  ASSERT_OK(RunSpec("kind: swapopt\nneeds: [pre, prev]\nswapopt: {neighborhoods: 10, "
                    "swaps_per_neighborhood: 5, layers: [layer4.1], positions_from: prev, "
                    "pool_windows: 50, eval_windows: 5}\n",
                    rep2, dir_ / "out2"));
  at::Tensor start = science::ReadNpy((dir_ / "out2" / "positions_initial" / "layer4.1.npy").string());
  EXPECT_TRUE(at::equal(start, science::ReadNpy((dir_ / "inputs" / "prev" / "positions" /
                                                 "layer4.1.npy").string())));
  FakeReporter rep3;
  absl::Status bad = RunSpec("kind: swapopt\nneeds: [pre]\nswapopt: {layers: [conv9]}\n", rep3,
                             dir_ / "out3");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("conv9"), std::string::npos);
}

}  // namespace
}  // namespace topolab::worker
