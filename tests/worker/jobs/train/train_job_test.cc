// The train job end to end on a tiny Fashion-MNIST slice at 32 px:
// overfitting a fixed batch, determinism, checkpoint + resume equal to an
// uninterrupted run, metrics.json, cancellation, spec errors; plus the LR
// schedule and checkpoint discovery helpers.
#include "worker/jobs/train/train_job.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "worker/science/data/dataset.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;

bool HaveFashionMnist() {
  return fs::exists(std::string(science::kDefaultFashionMnistPath) + "/train-images-idx3-ubyte.gz");
}

// Records everything a job reports; cancels once CancelRequested() has been
// asked `cancel_after` times (one call per step).
class FakeReporter : public JobReporter {
 public:
  void Log(const std::string& line) override { logs.push_back(line); }
  void Progress(double fraction) override { progress.push_back(fraction); }
  void Metrics(int64_t step, const std::map<std::string, double>& values) override {
    metrics.emplace_back(step, values);
  }
  void ArtifactReady(const std::string& path) override { artifacts.push_back(path); }
  bool CancelRequested() override { return cancel_after >= 0 && ++cancel_calls > cancel_after; }

  bool LogContains(const std::string& text) const {
    for (const auto& l : logs) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }
  // (step, loss, accuracy) of every training metrics report.
  std::vector<std::tuple<int64_t, double, double>> LossTrace() const {
    std::vector<std::tuple<int64_t, double, double>> out;
    for (const auto& [step, m] : metrics) {
      if (m.count("loss")) out.emplace_back(step, m.at("loss"), m.at("accuracy"));
    }
    return out;
  }

  std::vector<std::string> logs, artifacts;
  std::vector<double> progress;
  std::vector<std::pair<int64_t, std::map<std::string, double>>> metrics;
  int cancel_after = -1;
  int cancel_calls = 0;
};

class TrainJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
    root_ = fs::temp_directory_path() /
            ("topolab_train_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // 32 px, 32 train images in batches of 8 (4 steps per epoch).
  static nlohmann::json Spec() {
    return {{"kind", "train"},
            {"id", "pretrain"},
            {"seed", 7},
            {"epochs", 2},
            {"batch_size", 8},
            {"optimizer", {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 1e-4}}},
            {"lr_schedule", "cosine"},
            {"log_every", 1},
            {"checkpoint_every", 0},
            {"eval_batches", 1},
            {"model", {{"family", "resnet18"}}},
            {"data", {{"dataset", "fashion_mnist"}, {"image_size", 32}, {"train_subset", 32}, {"test_subset", 16}}}};
  }

  absl::Status RunJob(const nlohmann::json& spec, const std::string& out, FakeReporter* reporter,
                      const std::string& resume = "") {
    JobContext ctx;
    ctx.job_id = "test";
    ctx.spec = spec;
    ctx.out_dir = root_ / out;
    fs::create_directories(ctx.out_dir);
    if (!resume.empty()) ctx.resume_dir = root_ / resume;
    ctx.threads = 1;
    ctx.reporter = reporter;
    return MakeTrainJob()->Run(ctx);
  }

  fs::path root_;
};

TEST_F(TrainJobTest, OverfitsAFixedSmallBatch) {
  nlohmann::json spec = Spec();
  spec["data"]["train_subset"] = 8;  // one batch, the same 8 images every step
  spec["epochs"] = 30;
  spec["optimizer"]["lr"] = 0.02;
  spec["lr_schedule"] = "constant";
  spec["eval_batches"] = 0;
  FakeReporter rep;
  ASSERT_OK(RunJob(spec, "out", &rep));
  auto trace = rep.LossTrace();
  ASSERT_EQ(trace.size(), 30u);
  const double first = std::get<1>(trace.front());
  const double last = std::get<1>(trace.back());
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 0.25 * first) << "first " << first << " last " << last;
  EXPECT_EQ(std::get<2>(trace.back()), 1.0);  // every image of the batch right
}

TEST_F(TrainJobTest, SameSeedSameTraceDifferentSeedDifferent) {
  nlohmann::json spec = Spec();
  spec["max_steps"] = 4;
  FakeReporter a, b, c;
  ASSERT_OK(RunJob(spec, "a", &a));
  ASSERT_OK(RunJob(spec, "b", &b));
  spec["seed"] = 8;
  ASSERT_OK(RunJob(spec, "c", &c));
  ASSERT_EQ(a.LossTrace().size(), 4u);
  EXPECT_EQ(a.LossTrace(), b.LossTrace());
  EXPECT_NE(a.LossTrace(), c.LossTrace());
}

TEST_F(TrainJobTest, ReportsMetricsAndWritesArtifacts) {
  nlohmann::json spec = Spec();
  spec["log_every"] = 2;
  spec["checkpoint_every"] = 3;
  FakeReporter rep;
  ASSERT_OK(RunJob(spec, "out", &rep));
  // 8 steps; metrics every 2 steps with every key.
  auto trace = rep.LossTrace();
  ASSERT_EQ(trace.size(), 4u);
  EXPECT_EQ(std::get<0>(trace.back()), 8);
  for (const char* key : {"loss", "accuracy", "lr", "img_per_s", "epoch", "task_loss"}) {
    EXPECT_TRUE(rep.metrics.front().second.count(key)) << key;
  }
  EXPECT_DOUBLE_EQ(rep.metrics.front().second.at("epoch"), 0.5);
  EXPECT_DOUBLE_EQ(rep.metrics.front().second.at("lr"), LearningRateAt(*ParseTrainOptions(spec), 1, 8));
  EXPECT_GT(rep.metrics.front().second.at("img_per_s"), 0.0);
  EXPECT_DOUBLE_EQ(rep.progress.back(), 1.0);
  EXPECT_TRUE(rep.LogContains("step=2/8"));
  EXPECT_TRUE(rep.LogContains("test: accuracy="));
  // Checkpoints at 3 and 6, then final + metrics, each announced.
  EXPECT_EQ(rep.artifacts, (std::vector<std::string>{"checkpoints/step_0000003.pt", "checkpoints/step_0000006.pt",
                                                     "checkpoints/final.pt", "metrics.json"}));
  for (const auto& a : rep.artifacts) EXPECT_TRUE(fs::exists(root_ / "out" / a)) << a;

  std::ifstream in(root_ / "out" / "metrics.json");
  nlohmann::json m = nlohmann::json::parse(in);
  EXPECT_EQ(m["final"]["step"], 8);
  EXPECT_EQ(m["history"].size(), 4u);
  EXPECT_EQ(m["history"][3]["loss"].get<double>(), std::get<1>(trace.back()));
  EXPECT_EQ(m["test"]["test_images"], 8);  // eval_batches 1 x batch_size 8
  EXPECT_GE(m["test"]["test_accuracy"].get<double>(), 0.0);
  EXPECT_LE(m["test"]["test_accuracy"].get<double>(), 1.0);
  EXPECT_EQ(m["class_names"].size(), 10u);

  // final.pt reloads into a model built from its own meta.
  absl::StatusOr<science::CheckpointInfo> info =
      science::ReadCheckpointInfo((root_ / "out" / "checkpoints" / "final.pt").string());
  ASSERT_OK(info);
  EXPECT_EQ(info->step, 8);
  EXPECT_FALSE(info->has_optimizer);
  EXPECT_EQ(info->meta["family"], "resnet18");
  EXPECT_EQ(info->meta["image_size"], 32);
  auto model = science::MakeModel(info->meta["model"], info->meta["num_classes"].get<int64_t>());
  ASSERT_OK(model);
  EXPECT_OK(science::LoadCheckpoint((root_ / "out" / "checkpoints" / "final.pt").string(), **model, nullptr));
}

TEST_F(TrainJobTest, ResumeFromCheckpointEqualsUninterruptedRun) {
  nlohmann::json spec = Spec();
  spec["checkpoint_every"] = 3;
  spec["eval_batches"] = 0;
  FakeReporter full;
  ASSERT_OK(RunJob(spec, "full", &full));

  // Attempt 1 is cancelled before step 6 (after the step-3 checkpoint).
  FakeReporter first;
  first.cancel_after = 5;
  absl::Status cancelled = RunJob(spec, "attempt1", &first);
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled) << cancelled;
  EXPECT_TRUE(fs::exists(root_ / "attempt1" / "checkpoints" / "step_0000003.pt"));
  EXPECT_FALSE(fs::exists(root_ / "attempt1" / "checkpoints" / "final.pt"));
  EXPECT_FALSE(fs::exists(root_ / "attempt1" / "metrics.json"));

  // Attempt 2 resumes from attempt 1's newest checkpoint.
  FakeReporter second;
  ASSERT_OK(RunJob(spec, "attempt2", &second, "attempt1"));
  EXPECT_TRUE(second.LogContains("resumed from step 3")) << second.logs.front();
  auto resumed = second.LossTrace();
  ASSERT_EQ(resumed.size(), 5u);  // steps 4..8
  EXPECT_EQ(std::get<0>(resumed.front()), 4);
  // Steps 4..8 reproduce the uninterrupted run exactly (1 thread).
  auto uninterrupted = full.LossTrace();
  using Trace = std::vector<std::tuple<int64_t, double, double>>;
  EXPECT_EQ(Trace(uninterrupted.begin() + 3, uninterrupted.end()), resumed);

  // Final weights are identical.
  auto load = [&](const std::string& dir) {
    torch::manual_seed(99);
    auto m = science::MakeModel(nlohmann::json::object(), 10);
    EXPECT_OK(m);
    EXPECT_OK(science::LoadCheckpoint((root_ / dir / "checkpoints" / "final.pt").string(), **m, nullptr));
    return *m;
  };
  auto a = load("full"), b = load("attempt2");
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
  auto bb = b->named_buffers();
  for (const auto& x : a->named_buffers()) EXPECT_TRUE(at::equal(x.value(), bb[x.key()])) << x.key();
  // metrics.json of the resumed run carries the whole history.
  std::ifstream in(root_ / "attempt2" / "metrics.json");
  EXPECT_EQ(nlohmann::json::parse(in)["history"].size(), 8u);
}

TEST_F(TrainJobTest, ResumeSkipsAnUnreadableNewestCheckpoint) {
  nlohmann::json spec = Spec();
  spec["checkpoint_every"] = 2;
  spec["eval_batches"] = 0;
  FakeReporter first;
  first.cancel_after = 5;
  EXPECT_EQ(RunJob(spec, "attempt1", &first).code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(fs::exists(root_ / "attempt1" / "checkpoints" / "step_0000004.pt"));
  std::ofstream(root_ / "attempt1" / "checkpoints" / "step_0000004.pt", std::ios::trunc) << "truncated";
  FakeReporter second;
  ASSERT_OK(RunJob(spec, "attempt2", &second, "attempt1"));
  EXPECT_TRUE(second.LogContains("skipping checkpoint step_0000004.pt"));
  EXPECT_TRUE(second.LogContains("resumed from step 2"));
  EXPECT_EQ(std::get<0>(second.LossTrace().front()), 3);
}

TEST_F(TrainJobTest, CancelBeforeFirstStepReturnsCancelled) {
  FakeReporter rep;
  rep.cancel_after = 0;
  absl::Status s = RunJob(Spec(), "out", &rep);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(rep.LossTrace().empty());
  EXPECT_TRUE(rep.artifacts.empty());
}

TEST_F(TrainJobTest, BadSpecsAreRejectedWithTheKey) {
  FakeReporter rep;
  nlohmann::json spec = Spec();
  spec["batch_size"] = 0;
  absl::Status s = RunJob(spec, "out", &rep);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("batch_size"), std::string::npos) << s;
  spec = Spec();
  spec["optimizer"]["lr"] = "fast";
  s = RunJob(spec, "out", &rep);
  EXPECT_NE(s.message().find("optimizer.lr"), std::string::npos) << s;
  spec = Spec();
  spec["model"]["family"] = "vgg";
  EXPECT_EQ(RunJob(spec, "out", &rep).code(), absl::StatusCode::kInvalidArgument);
  spec = Spec();
  spec["data"]["path"] = (root_ / "nowhere").string();
  EXPECT_EQ(RunJob(spec, "out", &rep).code(), absl::StatusCode::kNotFound);
  spec = Spec();
  spec["objective"] = "byol";
  EXPECT_EQ(RunJob(spec, "out", &rep).code(), absl::StatusCode::kInvalidArgument);
}

TEST(TrainHelpersTest, CosineScheduleClosedForm) {
  TrainOptions o;
  o.lr = 0.4;
  o.min_lr = 0.0;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0, 100), 0.4);
  EXPECT_NEAR(LearningRateAt(o, 50, 100), 0.2, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 25, 100), 0.2 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_GT(LearningRateAt(o, 99, 100), 0.0);
  o.min_lr = 0.1;
  EXPECT_NEAR(LearningRateAt(o, 50, 100), 0.25, 1e-12);
  o.warmup_steps = 10;
  EXPECT_NEAR(LearningRateAt(o, 0, 110), 0.04, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 9, 110), 0.4, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 10, 110), 0.4, 1e-12);
  o.lr_schedule = "constant";
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 77, 100), 0.4);
}

TEST(TrainHelpersTest, ParseTrainOptionsDefaultsAndErrors) {
  absl::StatusOr<TrainOptions> o = ParseTrainOptions({{"optimizer", {{"nesterov", true}}}, {"seed", 5}});
  ASSERT_OK(o);
  EXPECT_TRUE(o->nesterov);
  EXPECT_EQ(o->seed, 5u);
  EXPECT_EQ(o->batch_size, 64);
  EXPECT_EQ(o->lr_schedule, "cosine");
  auto err = [](const nlohmann::json& j) { return ParseTrainOptions(j).status(); };
  EXPECT_NE(err({{"lr_schedule", "step"}}).message().find("lr_schedule"), std::string::npos);
  EXPECT_NE(err({{"optimizer", {{"nesterov", true}, {"momentum", 0.0}}}}).message().find("optimizer.nesterov"),
            std::string::npos);
  EXPECT_NE(err({{"epochs", 0}}).message().find("epochs"), std::string::npos);
  EXPECT_NE(err({{"log_every", 1.5}}).message().find("log_every"), std::string::npos);
}

TEST(TrainHelpersTest, FindNewestCheckpointPrefersFinalThenHighestStep) {
  fs::path dir = fs::temp_directory_path() / "topolab_train_find_ckpt";
  fs::remove_all(dir);
  EXPECT_FALSE(FindNewestCheckpoint(dir).has_value());
  fs::create_directories(dir);
  EXPECT_FALSE(FindNewestCheckpoint(dir).has_value());
  for (const char* f : {"step_0000009.pt", "step_0000100.pt", "step_0000020.pt", "step_0000200.pt.tmp", "x.pt"}) {
    std::ofstream(dir / f) << "x";
  }
  EXPECT_EQ(FindNewestCheckpoint(dir)->filename(), "step_0000100.pt");
  std::ofstream(dir / "final.pt") << "x";
  EXPECT_EQ(FindNewestCheckpoint(dir)->filename(), "final.pt");
  std::vector<fs::path> all = ListCheckpointsNewestFirst(dir);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].filename(), "step_0000100.pt");
  EXPECT_EQ(all[2].filename(), "step_0000020.pt");
  EXPECT_EQ(all[3].filename(), "step_0000009.pt");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace topolab::worker
