// End-to-end tests on loopback with the real binaries: a scheduler
// (`topolab-scheduler`), one or two workers (`topolab-worker`) and the CLI
// (`topolab`), each with temporary folders.
//
//  (a) submit -> a worker trains a few steps on Fashion-MNIST -> `topolab
//      pull` -> the pulled files' SHA-256 match the scheduler's, the metrics
//      are there;
//  (b) kill -9 of the scheduler with jobs queued and running, restart on the
//      same data dir and port -> everything is still there, every job
//      finishes, each exactly once;
//  (c) kill -9 of a worker mid-job -> the lease expires (short TTL) -> the
//      job is requeued, a second worker resumes it from its checkpoint (its
//      log says "resumed from step k", k > 0) -> exactly one completion.
//
// Binaries come from the build (TOPOLAB_*_BIN, set by CMake from
// TOPOLAB_BINARY_DIR's targets). Process output goes to files in the test's
// temp dir, printed when a test fails.
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "proto/sha256.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"

namespace topolab {
namespace itest {
namespace {

using std::chrono::seconds;

#ifdef TOPOLAB_HAVE_TRAIN
constexpr bool kHaveTrain = true;
const char kTrainYaml[] = R"(name: itest-train
priority: 1
data:
  dataset: fashion_mnist
  image_size: 32
  train_subset: 512
  test_subset: 128
stages:
  - id: train
    kind: train
    max_steps: 6
    batch_size: 16
    log_every: 2
    checkpoint_every: 3
    eval_batches: 2
)";
#else
constexpr bool kHaveTrain = false;
const char kTrainYaml[] = R"(name: itest-train
stages:
  - id: train
    kind: sleep
    seconds: 0.5
)";
#endif

TEST_F(IntegrationTest, SubmitTrainPullVerifiesChecksumsAndMetrics) {
  StartScheduler("127.0.0.1:0");
  StartWorker("worker");
  const std::string id = Submit("train", kTrainYaml);
  ASSERT_TRUE(WaitForState(id, v1::EXPERIMENT_SUCCEEDED, seconds(400)))
      << Get(id).value_or(v1::Experiment()).DebugString();

  absl::StatusOr<v1::Experiment> e = Get(id);
  ASSERT_OK(e);
  ASSERT_EQ(e->jobs_size(), 1);
  const v1::Job& job = e->jobs(0);
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED);
  EXPECT_EQ(job.attempt(), 1);
  EXPECT_DOUBLE_EQ(job.progress(), 1.0);
  if (kHaveTrain) {
    EXPECT_TRUE(job.metrics().count("loss")) << job.DebugString();
  } else {
    EXPECT_DOUBLE_EQ(job.metrics().at("step"), 10.0);
  }

  const fs::path out = root_ / "pulled";
  auto [rc, text] = Cli("pull " + id + " -o " + out.string());
  ASSERT_EQ(rc, 0) << text;
  std::vector<v1::Artifact> arts = Artifacts(id);
  ASSERT_FALSE(arts.empty());
  bool has_metrics_json = false;
  for (const v1::Artifact& a : arts) {
    fs::path file = out / a.stage_id() / a.name();
    ASSERT_TRUE(fs::exists(file)) << file << "\n" << text;
    absl::StatusOr<std::string> sha = Sha256File(file.string());
    ASSERT_OK(sha);
    EXPECT_EQ(*sha, a.sha256()) << a.name();
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(file)), a.size()) << a.name();
    if (a.name() == "metrics.json") {
      has_metrics_json = true;
      EXPECT_NE(ReadFile(file).find("loss"), std::string::npos);
    }
  }
  if (kHaveTrain) {
    EXPECT_TRUE(has_metrics_json);
  }
  std::vector<std::string> logs = Logs(id, "train");
  EXPECT_GE(CountContaining(logs, "starting attempt 1"), 1);
}

const char kChainYaml[] = R"(name: itest-chain
stages:
  - id: first
    kind: sleep
    seconds: 3
  - id: second
    kind: sleep
    seconds: 0.5
    needs: [first]
)";

TEST_F(IntegrationTest, SchedulerKill9WithQueuedAndRunningJobsLosesNothing) {
  Proc scheduler = StartScheduler("127.0.0.1:0", {"--lease-ttl-ms", "20000",
                                                  "--heartbeat-interval-ms", "300"});
  const std::string address = address_;
  StartWorker("worker");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit("chain" + std::to_string(i), kChainYaml));
  // One job running (the worker runs one at a time), the rest queued or blocked.
  ASSERT_TRUE(WaitUntil([&] {
    auto e = Get(ids[0]);
    return e.ok() && e->jobs_size() == 2 && e->jobs(0).state() == v1::JOB_RUNNING &&
           e->jobs(0).progress() > 0;
  }, seconds(120)));

  Kill9(scheduler);
  std::this_thread::sleep_for(seconds(1));  // the worker notices and backs off
  StartScheduler(address, {"--lease-ttl-ms", "20000", "--heartbeat-interval-ms", "300"});
  ASSERT_EQ(address_, address);

  for (const std::string& id : ids) {
    auto e = Get(id);
    ASSERT_OK(e);  // durable across kill -9
    EXPECT_EQ(e->jobs_size(), 2);
  }
  for (const std::string& id : ids) {
    ASSERT_TRUE(WaitForState(id, v1::EXPERIMENT_SUCCEEDED, seconds(180)))
        << Get(id).value_or(v1::Experiment()).DebugString();
  }
  for (const std::string& id : ids) {
    auto e = Get(id);
    ASSERT_OK(e);
    for (const v1::Job& job : e->jobs()) {
      EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED);
      // Finished exactly once: one run reached the end of the sleep.
      std::vector<std::string> logs = Logs(id, job.stage_id());
      EXPECT_EQ(CountContaining(logs, "slept "), 1) << id << "/" << job.stage_id();
    }
    int results = 0;
    for (const v1::Artifact& a : Artifacts(id)) results += a.name() == "result.json" ? 1 : 0;
    EXPECT_EQ(results, 2) << id;  // one per stage
  }
}

TEST_F(IntegrationTest, WorkerKill9MidJobIsRequeuedAndResumedFromCheckpoint) {
  StartScheduler("127.0.0.1:0", {"--lease-ttl-ms", "2000", "--heartbeat-interval-ms", "200"});
  Proc worker_a = StartWorker("worker_a");
  const std::string id = Submit("resume", R"(name: itest-resume
stages:
  - id: long
    kind: sleep
    seconds: 12
    max_attempts: 3
)");
  // Mid-job: a checkpoint has been uploaded and progress reported.
  ASSERT_TRUE(WaitUntil([&] {
    auto e = Get(id);
    if (!e.ok() || e->jobs_size() != 1 || e->jobs(0).progress() < 0.3) return false;
    for (const v1::Artifact& a : Artifacts(id)) {
      if (a.name() == "checkpoints/sleep_state.json") return true;
    }
    return false;
  }, seconds(120)));
  Kill9(worker_a);

  // The lease expires (2 s TTL) and the job is queued again (the scheduler
  // counts the attempt up when it leases it next).
  ASSERT_TRUE(WaitUntil([&] {
    auto e = Get(id);
    return e.ok() && e->jobs(0).state() == v1::JOB_QUEUED;
  }, seconds(60))) << Get(id).value_or(v1::Experiment()).DebugString();

  StartWorker("worker_b");
  ASSERT_TRUE(WaitForState(id, v1::EXPERIMENT_SUCCEEDED, seconds(120)))
      << Get(id).value_or(v1::Experiment()).DebugString();
  auto e = Get(id);
  ASSERT_OK(e);
  EXPECT_EQ(e->jobs(0).attempt(), 2);
  std::vector<std::string> logs = Logs(id, "long");
  std::smatch m;
  int resumed_step = -1;
  for (const std::string& l : logs) {
    if (std::regex_search(l, m, std::regex("resumed from step (\\d+)"))) resumed_step = std::stoi(m[1]);
  }
  EXPECT_GT(resumed_step, 0) << "no resume line in the logs";
  EXPECT_EQ(CountContaining(logs, "slept "), 1);  // exactly one run finished
  EXPECT_EQ(CountContaining(logs, "starting attempt 2"), 1);
  int results = 0;
  for (const v1::Artifact& a : Artifacts(id)) {
    if (a.name() == "result.json") {
      ++results;
    }
  }
  EXPECT_EQ(results, 1);
}

}  // namespace
}  // namespace itest
}  // namespace topolab
