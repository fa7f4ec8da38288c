// The train job end to end on a tiny Fashion-MNIST slice at 32 px:
// overfitting a fixed batch, determinism, checkpoint + resume equal to an
// uninterrupted run (SGD, and Adam with clipping and a multistep schedule),
// gradient-norm clipping, metrics.json, cancellation, spec errors; plus the
// LR schedules, the optimizers against hand-computed updates and checkpoint
// discovery helpers.
#include "worker/jobs/train/train_job.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "proto/config/experiment_config.h"
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

  void ExpectResumeEqualsUninterrupted(nlohmann::json spec, FakeReporter& full);

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

// SGD without momentum or decay moves the weights by lr * clipped gradient,
// so one clipped step moves them by exactly lr * clip_grad_norm in total L2
// norm, while the reported pre-clip grad_norm is larger.
TEST_F(TrainJobTest, ClipGradNormBoundsTheUpdateAndReportsThePreClipNorm) {
  nlohmann::json spec = Spec();
  spec["max_steps"] = 1;
  spec["eval_batches"] = 0;
  spec["lr_schedule"] = "constant";
  const double lr = 0.5, clip = 0.01;
  spec["optimizer"] = {{"lr", lr}, {"momentum", 0.0}, {"weight_decay", 0.0}, {"clip_grad_norm", clip}};
  FakeReporter rep;
  ASSERT_OK(RunJob(spec, "clipped", &rep));
  ASSERT_EQ(rep.metrics.size(), 1u);
  ASSERT_TRUE(rep.metrics[0].second.count("grad_norm"));
  const double grad_norm = rep.metrics[0].second.at("grad_norm");
  EXPECT_GT(grad_norm, 10 * clip) << "the test needs a gradient well above the clip";

  // The initial weights: the job seeds with the spec's seed, then builds.
  torch::manual_seed(7);
  auto before = science::MakeModel(spec["model"], 10);
  ASSERT_OK(before);
  auto after = science::MakeModel(spec["model"], 10);
  ASSERT_OK(after);
  ASSERT_OK(science::LoadCheckpoint((root_ / "clipped" / "checkpoints" / "final.pt").string(), **after, nullptr));
  double sq = 0.0;
  auto pa = (*after)->named_parameters();
  for (const auto& p : (*before)->named_parameters()) sq += (pa[p.key()] - p.value()).pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(sq), lr * clip, 1e-3 * lr * clip);

  // Without clipping the same step moves them by lr * grad_norm and no
  // grad_norm metric is reported.
  spec["optimizer"]["clip_grad_norm"] = 0.0;
  FakeReporter free_rep;
  ASSERT_OK(RunJob(spec, "free", &free_rep));
  EXPECT_FALSE(free_rep.metrics[0].second.count("grad_norm"));
  ASSERT_OK(science::LoadCheckpoint((root_ / "free" / "checkpoints" / "final.pt").string(), **after, nullptr));
  sq = 0.0;
  pa = (*after)->named_parameters();
  for (const auto& p : (*before)->named_parameters()) sq += (pa[p.key()] - p.value()).pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(sq), lr * grad_norm, 1e-3 * lr * grad_norm);
}

// The YAML the lead puts in the examples, through the config validator, and
// the job spec it normalises to runs: alltnn with explicit `layers` and
// `layer_factors` under Adam + clipping; v1resnet with explicit `blocks`
// under SGD + multistep.
TEST_F(TrainJobTest, NormalisedConfigsWithNewKeysRun) {
  const std::string data = "data: {dataset: fashion_mnist, image_size: 32, train_subset: 16, test_subset: 8}\n";
  const std::string alltnn =
      "name: a\nseed: 1\n" + data +
      "model:\n  family: alltnn\n  image_size: 32\n  layers:\n"
      "    - {kernel: 5, stride: 2, channels: 4, pool: true}\n    - {kernel: 3, channels: 9}\n"
      "  layer_factors: [1.0, 0.5]\n"
      "stages:\n  - id: train\n    kind: train\n    max_steps: 2\n    batch_size: 8\n    log_every: 1\n"
      "    eval_batches: 0\n    lr_schedule: constant\n"
      "    optimizer: {name: adam, lr: 1.0e-3, eps: 1.0e-7, clip_grad_norm: 500, weight_decay: 0}\n";
  const std::string v1 =
      "name: v\nseed: 1\n" + data +
      "model: {family: v1resnet, variant: resnet50, image_size: 32, width_divisor: 8, blocks: [1, 1, 1, 1]}\n"
      "stages:\n  - id: train\n    kind: train\n    epochs: 3\n    batch_size: 8\n    log_every: 1\n"
      "    eval_batches: 0\n    optimizer: {lr: 0.1, momentum: 0.9, weight_decay: 1.0e-5}\n"
      "    lr_schedule: multistep\n    lr_milestones: [1, 2]\n    lr_gamma: 0.1\n";
  config::ParseOptions po;
  po.default_owner = "test";
  for (const std::string& yaml : {alltnn, v1}) {
    absl::StatusOr<config::ExperimentSpec> exp = config::ParseExperimentYaml(yaml, po);
    ASSERT_OK(exp);
    FakeReporter rep;
    ASSERT_OK(RunJob(exp->stages[0].job_spec, exp->name, &rep));
    std::vector<double> lrs;
    for (const auto& [step, m] : rep.metrics) lrs.push_back(m.at("lr"));
    if (exp->name == "a") {
      EXPECT_EQ(lrs, (std::vector<double>{1e-3, 1e-3}));
      EXPECT_TRUE(rep.metrics[0].second.count("grad_norm"));
      auto info = science::ReadCheckpointInfo((root_ / "a" / "checkpoints" / "final.pt").string());
      ASSERT_OK(info);
      EXPECT_EQ(info->meta["model"]["layers"].size(), 2u);
    } else {
      // 16 images / 8 = 2 steps per epoch: milestones at steps 2 and 4.
      ASSERT_EQ(lrs.size(), 6u);
      EXPECT_DOUBLE_EQ(lrs[1], 0.1);
      EXPECT_NEAR(lrs[2], 0.01, 1e-15);
      EXPECT_NEAR(lrs[4], 0.001, 1e-16);
      EXPECT_FALSE(rep.metrics[0].second.count("grad_norm"));
    }
  }
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
  EXPECT_DOUBLE_EQ(rep.metrics.front().second.at("lr"), LearningRateAt(*ParseTrainOptions(spec), 1, 8, 4));
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

// Runs `spec` (8 steps, checkpoint_every 3) uninterrupted and as a run
// cancelled before step 6 and resumed; expects identical traces and weights.
void TrainJobTest::ExpectResumeEqualsUninterrupted(nlohmann::json spec, FakeReporter& full) {
  spec["checkpoint_every"] = 3;
  spec["eval_batches"] = 0;
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

TEST_F(TrainJobTest, ResumeFromCheckpointEqualsUninterruptedRun) {
  FakeReporter full;
  ExpectResumeEqualsUninterrupted(Spec(), full);
}

// Adam's moments and step count must come back from the checkpoint: with
// them lost, step 4 would be a fresh bias-corrected first step and the
// weights would differ. Clipping and the multistep schedule ride along.
TEST_F(TrainJobTest, ResumeWithAdamClipAndMultistepEqualsUninterruptedRun) {
  nlohmann::json spec = Spec();
  spec["optimizer"] = {{"name", "adam"}, {"lr", 1e-3}, {"betas", {0.8, 0.99}}, {"eps", 1e-7},
                       {"weight_decay", 1e-4}, {"clip_grad_norm", 0.5}};
  spec["lr_schedule"] = "multistep";
  spec["lr_milestones"] = {1, 1.5};  // steps 4 and 6 (4 steps per epoch)
  spec["lr_gamma"] = 0.5;
  FakeReporter full;
  ExpectResumeEqualsUninterrupted(spec, full);
  // The lr reported at step s is that of step s-1 (log_every 1).
  std::vector<double> lrs;
  for (const auto& [step, m] : full.metrics) {
    if (m.count("lr")) lrs.push_back(m.at("lr"));
  }
  EXPECT_EQ(lrs, (std::vector<double>{1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4}));
  for (const auto& [step, m] : full.metrics) {
    if (m.count("loss")) {
      EXPECT_TRUE(m.count("grad_norm")) << "step " << step;
    }
  }
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
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0, 100, 1), 0.4);
  EXPECT_NEAR(LearningRateAt(o, 50, 100, 1), 0.2, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 25, 100, 1), 0.2 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_GT(LearningRateAt(o, 99, 100, 1), 0.0);
  o.min_lr = 0.1;
  EXPECT_NEAR(LearningRateAt(o, 50, 100, 1), 0.25, 1e-12);
  o.warmup_steps = 10;
  EXPECT_NEAR(LearningRateAt(o, 0, 110, 1), 0.04, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 9, 110, 1), 0.4, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 10, 110, 1), 0.4, 1e-12);
  o.lr_schedule = "constant";
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 77, 100, 1), 0.4);
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

TEST(TrainHelpersTest, MultistepScheduleDecaysAtMilestoneEpochs) {
  TrainOptions o;
  o.lr = 0.1;
  o.lr_schedule = "multistep";
  o.lr_milestones = {2, 3.5};
  o.lr_gamma = 0.1;
  // 4 steps per epoch: milestones at steps 8 and 14.
  for (int64_t step : {0, 7}) EXPECT_DOUBLE_EQ(LearningRateAt(o, step, 100, 4), 0.1) << step;
  for (int64_t step : {8, 13}) EXPECT_NEAR(LearningRateAt(o, step, 100, 4), 0.01, 1e-15) << step;
  for (int64_t step : {14, 99}) EXPECT_NEAR(LearningRateAt(o, step, 100, 4), 0.001, 1e-16) << step;
  // PyTorch's MultiStepLR([60, 80], 0.1) stepped per epoch, 10 steps each.
  o.lr_milestones = {60, 80};
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 599, 1000, 10), 0.1);
  EXPECT_NEAR(LearningRateAt(o, 600, 1000, 10), 0.01, 1e-15);
  EXPECT_NEAR(LearningRateAt(o, 799, 1000, 10), 0.01, 1e-15);
  EXPECT_NEAR(LearningRateAt(o, 800, 1000, 10), 0.001, 1e-16);
  // Warm-up ramps first; milestones count from step 0.
  o.lr_milestones = {1};
  o.warmup_steps = 3;
  EXPECT_NEAR(LearningRateAt(o, 0, 100, 2), 0.1 / 3, 1e-15);
  EXPECT_NEAR(LearningRateAt(o, 2, 100, 2), 0.1, 1e-15);
  EXPECT_NEAR(LearningRateAt(o, 3, 100, 2), 0.01, 1e-15);
  // No milestones: constant.
  o.lr_milestones.clear();
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 50, 100, 2), 0.1);
}

TEST(TrainHelpersTest, MilestoneStepRoundsUpToAStep) {
  EXPECT_EQ(MilestoneStep(60, 10), 600);
  EXPECT_EQ(MilestoneStep(0.3, 10), 3) << "0.3 * 10 is 3.0000000000000004 in binary";
  EXPECT_EQ(MilestoneStep(0.25, 3), 1);
  EXPECT_EQ(MilestoneStep(1.5, 3), 5);
  EXPECT_EQ(MilestoneStep(0, 7), 0);
}

TEST(TrainHelpersTest, ParseOptimizerAndScheduleKeys) {
  absl::StatusOr<TrainOptions> o = ParseTrainOptions(
      {{"optimizer", {{"name", "adamw"}, {"betas", {0.5, 0.75}}, {"eps", 1e-7}, {"clip_grad_norm", 500}}},
       {"lr_schedule", "multistep"},
       {"lr_milestones", {60, 80.5}},
       {"lr_gamma", 0.2}});
  ASSERT_OK(o);
  EXPECT_EQ(o->optimizer, "adamw");
  EXPECT_EQ(o->beta1, 0.5);
  EXPECT_EQ(o->beta2, 0.75);
  EXPECT_EQ(o->eps, 1e-7);
  EXPECT_EQ(o->clip_grad_norm, 500.0);
  EXPECT_EQ(o->lr_schedule, "multistep");
  EXPECT_EQ(o->lr_milestones, (std::vector<double>{60, 80.5}));
  EXPECT_EQ(o->lr_gamma, 0.2);
  absl::StatusOr<TrainOptions> d = ParseTrainOptions(nlohmann::json::object());
  ASSERT_OK(d);
  EXPECT_EQ(d->optimizer, "sgd");
  EXPECT_EQ(d->beta1, 0.9);
  EXPECT_EQ(d->beta2, 0.999);
  EXPECT_EQ(d->eps, 1e-8);
  EXPECT_EQ(d->clip_grad_norm, 0.0);
  EXPECT_EQ(d->lr_gamma, 0.1);
  auto msg = [](const nlohmann::json& j) { return std::string(ParseTrainOptions(j).status().message()); };
  EXPECT_EQ(msg({{"optimizer", {{"name", "rmsprop"}}}}),
            "optimizer.name: must be sgd, adam or adamw, got 'rmsprop'");
  EXPECT_EQ(msg({{"optimizer", {{"name", "adam"}, {"betas", {0.9}}}}}),
            "optimizer.betas: must be a list of 2 numbers in [0, 1)");
  EXPECT_EQ(msg({{"optimizer", {{"name", "adam"}, {"betas", {0.9, 1.0}}}}}),
            "optimizer.betas[1]: must be a number in [0, 1)");
  EXPECT_EQ(msg({{"optimizer", {{"name", "adam"}, {"betas", {"a", 0.9}}}}}),
            "optimizer.betas[0]: must be a number in [0, 1)");
  EXPECT_EQ(msg({{"optimizer", {{"name", "adam"}, {"eps", 0}}}}), "optimizer.eps: must be a positive number");
  EXPECT_EQ(msg({{"optimizer", {{"clip_grad_norm", -1}}}}), "optimizer.clip_grad_norm: must be a non-negative number");
  EXPECT_EQ(msg({{"lr_milestones", {80, 60}}}), "lr_milestones[1]: must be greater than the item before it");
  EXPECT_EQ(msg({{"lr_milestones", 60}}), "lr_milestones: must be a list of numbers in [0, 1e+06]");
  EXPECT_EQ(msg({{"lr_gamma", 0}}), "lr_gamma: must be a positive number");
  // Nesterov's momentum requirement is an SGD rule only.
  EXPECT_OK(ParseTrainOptions({{"optimizer", {{"name", "adam"}, {"nesterov", true}, {"momentum", 0.0}}}}));
}

// A linear layer (decayed) and a LayerNorm (not decayed unless
// weight_decay_bn), in double precision, with fixed per-step gradients.
struct TinyNet {
  TinyNet() {
    torch::manual_seed(3);
    net = torch::nn::Sequential(torch::nn::Linear(3, 2), torch::nn::LayerNorm(torch::nn::LayerNormOptions({2})));
    net->to(torch::kDouble);
    for (auto& p : net->parameters()) {
      torch::NoGradGuard g;
      p.uniform_(-1, 1);  // LayerNorm starts at 1/0: give it generic values
    }
  }
  // Gradient of parameter i at step t: varied signs and magnitudes, tiny
  // for t = 0 so that eps matters.
  static at::Tensor Grad(const at::Tensor& p, size_t i, int t) {
    const double scale = t == 0 ? 1e-7 : 0.1 * (t + 1);
    at::Tensor ramp = at::arange(p.numel(), at::kDouble).reshape(p.sizes());
    return scale * at::cos(ramp * 1.7 + static_cast<double>(i) + 0.3 * t);
  }
  void Step(torch::optim::Optimizer& opt, int t) {
    opt.zero_grad();
    at::Tensor loss = at::zeros({}, at::kDouble);
    auto params = net->parameters();
    for (size_t i = 0; i < params.size(); ++i) loss = loss + (params[i] * Grad(params[i], i, t)).sum();
    loss.backward();
    opt.step();
  }
  torch::nn::Sequential net{nullptr};
};

// Textbook Adam / AdamW (Kingma & Ba; Loshchilov & Hutter) on one tensor.
struct RefAdam {
  at::Tensor p, m, v;
  int t = 0;
  void Step(const at::Tensor& grad, double lr, double b1, double b2, double eps, double wd, bool decoupled) {
    ++t;
    at::Tensor g = decoupled ? grad : grad + wd * p;
    if (decoupled) p = p * (1 - lr * wd);
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const at::Tensor m_hat = m / (1 - std::pow(b1, t));
    const at::Tensor v_hat = v / (1 - std::pow(b2, t));
    p = p - lr * m_hat / (at::sqrt(v_hat) + eps);
  }
};

void ExpectAdamMatchesReference(const std::string& name, bool weight_decay_bn) {
  SCOPED_TRACE(name + (weight_decay_bn ? " decaying norm layers" : ""));
  TrainOptions o;
  o.optimizer = name;
  o.lr = 0.01;
  o.beta1 = 0.5;
  o.beta2 = 0.75;
  o.eps = 1e-7;
  o.weight_decay = 0.1;
  o.weight_decay_bn = weight_decay_bn;
  TinyNet tiny;
  std::unique_ptr<torch::optim::Optimizer> opt = MakeOptimizer(o, *tiny.net);
  if (name == "adam") {
    EXPECT_NE(dynamic_cast<torch::optim::Adam*>(opt.get()), nullptr);
  } else {
    EXPECT_NE(dynamic_cast<torch::optim::AdamW*>(opt.get()), nullptr);
  }
  ASSERT_EQ(opt->param_groups().size(), weight_decay_bn ? 1u : 2u);
  auto named = tiny.net->named_parameters();
  std::vector<RefAdam> ref;
  std::vector<bool> decayed;
  for (const auto& p : named) {
    ref.push_back({p.value().detach().clone(), at::zeros_like(p.value()), at::zeros_like(p.value())});
    decayed.push_back(weight_decay_bn || p.key().rfind("0.", 0) == 0);  // "0.*" = the Linear
  }
  for (int t = 0; t < 3; ++t) {
    tiny.Step(*opt, t);
    for (size_t i = 0; i < ref.size(); ++i) {
      ref[i].Step(TinyNet::Grad(ref[i].p, i, t), o.lr, o.beta1, o.beta2, o.eps, decayed[i] ? o.weight_decay : 0.0,
                  name == "adamw");
    }
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_TRUE(at::allclose(named[i].value(), ref[i].p, 1e-12, 1e-12))
        << named[i].key() << "\n" << named[i].value() << "\n" << ref[i].p;
  }
  // eps is honoured: step 0's gradient (1e-7) is of eps's size, so the
  // first update is lr * g / (|g| + eps) = lr / 2 per element, not lr.
  TinyNet fresh;
  o.weight_decay = 0.0;
  std::unique_ptr<torch::optim::Optimizer> one = MakeOptimizer(o, *fresh.net);
  std::vector<at::Tensor> start;
  for (const auto& p : fresh.net->parameters()) start.push_back(p.detach().clone());
  fresh.Step(*one, 0);
  auto params = fresh.net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor g = TinyNet::Grad(params[i], i, 0);
    const at::Tensor expected = start[i] - o.lr * g / (g.abs() + o.eps);
    EXPECT_TRUE(at::allclose(params[i], expected, 1e-12, 1e-12)) << i;
    EXPECT_GT((start[i] - params[i]).abs().max().item<double>(), 0.4 * o.lr);
    EXPECT_LT((start[i] - params[i]).abs().max().item<double>(), 0.6 * o.lr);
  }
}

TEST(MakeOptimizerTest, AdamMatchesHandComputedUpdates) {
  ExpectAdamMatchesReference("adam", /*weight_decay_bn=*/false);
  ExpectAdamMatchesReference("adam", /*weight_decay_bn=*/true);
}

TEST(MakeOptimizerTest, AdamWDecaysDecoupledAndSparesNormLayers) {
  ExpectAdamMatchesReference("adamw", /*weight_decay_bn=*/false);
  ExpectAdamMatchesReference("adamw", /*weight_decay_bn=*/true);
}

TEST(MakeOptimizerTest, SgdMomentumAndWeightDecayAsBefore) {
  TrainOptions o;  // sgd, momentum 0.9, weight decay 1e-4
  o.lr = 0.05;
  o.weight_decay = 0.1;
  TinyNet tiny;
  std::unique_ptr<torch::optim::Optimizer> opt = MakeOptimizer(o, *tiny.net);
  EXPECT_NE(dynamic_cast<torch::optim::SGD*>(opt.get()), nullptr);
  auto named = tiny.net->named_parameters();
  std::vector<at::Tensor> p, buf;
  for (const auto& x : named) p.push_back(x.value().detach().clone());
  buf.resize(p.size());
  for (int t = 0; t < 3; ++t) {
    tiny.Step(*opt, t);
    for (size_t i = 0; i < p.size(); ++i) {
      const bool decayed = named[i].key().rfind("0.", 0) == 0;
      const at::Tensor g = TinyNet::Grad(p[i], i, t) + (decayed ? o.weight_decay : 0.0) * p[i];
      buf[i] = t == 0 ? g : o.momentum * buf[i] + g;
      p[i] = p[i] - o.lr * buf[i];
    }
  }
  for (size_t i = 0; i < p.size(); ++i) EXPECT_TRUE(at::allclose(named[i].value(), p[i], 1e-12, 1e-12)) << i;
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
