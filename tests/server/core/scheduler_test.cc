// Scheduler core tests: state machine, DAG, queue order, capability matching,
// leases, fencing, cancellation, long polls, recovery and store failures.
// Time comes from a FakeClock; nothing sleeps.
#include "server/core/scheduler.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/core/clock.h"
#include "server/core/event_hub.h"
#include "server/store/faulty_store.h"
#include "server/store/memory_store.h"
#include "tests/test_util.h"

namespace topolab::server {
namespace {

constexpr int64_t kTtl = 10'000;
constexpr int64_t kHeartbeat = 1'000;
const std::string kSha(64, 'a');

JobRecord Stage(const std::string& id, std::vector<std::string> needs = {},
                const std::string& kind = "sleep", int max_attempts = 3) {
  JobRecord j;
  j.stage_id = id;
  j.kind = kind;
  j.needs = std::move(needs);
  j.max_attempts = max_attempts;
  j.spec_json = "{\"kind\":\"" + kind + "\"}";
  return j;
}

NewExperiment Exp(std::vector<JobRecord> stages, const std::string& owner = "alice",
                  int priority = 0, const std::string& name = "exp") {
  NewExperiment e;
  e.experiment.name = name;
  e.experiment.owner = owner;
  e.experiment.priority = priority;
  e.experiment.config_yaml = "name: " + name + "\n";
  e.experiment.config_json = "{}";
  e.experiment.config_hash = kSha;
  e.jobs = std::move(stages);
  return e;
}

DeviceRecord Gpu(double gib) {
  DeviceRecord d;
  d.type = "cuda";
  d.name = "test gpu";
  d.memory_bytes = static_cast<int64_t>(gib * (int64_t{1} << 30));
  return d;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.lease_ttl_ms = kTtl;
    options_.heartbeat_interval_ms = kHeartbeat;
    options_.dead_after_missed_heartbeats = 3;
    options_.id_seed = 7;
    Start(store_);
  }

  void Start(Store& store) {
    scheduler_ = std::make_unique<Scheduler>(store, clock_, hub_, options_);
    ASSERT_OK(scheduler_->Recover());
  }

  SubmitResult Submit(NewExperiment e) {
    std::optional<absl::StatusOr<SubmitResult>> got;
    scheduler_->Submit(std::move(e), [&](absl::StatusOr<SubmitResult> r) { got = std::move(r); });
    scheduler_->FlushSubmits();
    EXPECT_TRUE(got.has_value());
    EXPECT_OK(*got);
    return got->ok() ? **got : SubmitResult{};
  }

  std::string Register(std::vector<std::string> kinds = {"sleep"},
                       std::vector<DeviceRecord> devices = {}, int max_jobs = 1) {
    WorkerRecord w;
    w.host = "host";
    w.job_kinds = std::move(kinds);
    w.devices = std::move(devices);
    w.max_concurrent_jobs = max_jobs;
    absl::StatusOr<WorkerRecord> r = scheduler_->RegisterWorker(w);
    EXPECT_OK(r);
    return r.ok() ? r->id : "";
  }

  // A non-blocking lease attempt.
  std::optional<LeaseGrant> Lease(const std::string& worker) {
    std::optional<absl::StatusOr<std::optional<LeaseGrant>>> got;
    scheduler_->LeaseJob(worker, 0, [&](auto r) { got = std::move(r); });
    EXPECT_TRUE(got.has_value());
    EXPECT_OK(*got);
    return got->ok() ? **got : std::nullopt;
  }

  JobRecord Stored(const std::string& job_id) {
    absl::StatusOr<JobRecord> j = store_.GetJob(job_id);
    EXPECT_OK(j);
    return j.ok() ? *j : JobRecord{};
  }
  ExperimentState StoredState(const std::string& experiment_id) {
    absl::StatusOr<ExperimentRecord> e = store_.GetExperiment(experiment_id);
    EXPECT_OK(e);
    return e.ok() ? e->state : ExperimentState::kQueued;
  }

  absl::Status Complete(const LeaseGrant& g, bool ok, const std::string& message = "") {
    CompletionReport c;
    c.job_id = g.job.id;
    c.fencing_token = g.job.fencing_token;
    c.succeeded = ok;
    c.message = message;
    return scheduler_->CompleteJob(c);
  }

  absl::StatusOr<bool> Beat(const LeaseGrant& g, double progress = 0.5,
                            std::map<std::string, double> metrics = {}) {
    HeartbeatReport h;
    h.job_id = g.job.id;
    h.fencing_token = g.job.fencing_token;
    h.progress = progress;
    h.step = 10;
    h.metrics = std::move(metrics);
    return scheduler_->Heartbeat(h);
  }

  FakeClock clock_;
  MemoryStore store_;
  EventHub hub_;
  SchedulerOptions options_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, SubmitStoresRootsQueuedAndDependantsBlocked) {
  SubmitResult r = Submit(Exp({Stage("a"), Stage("b", {"a"})}));
  ASSERT_EQ(r.job_ids.size(), 2u);
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kQueued);
  EXPECT_EQ(Stored(r.job_ids[0]).queued_at_ms, clock_.NowMs());
  EXPECT_EQ(Stored(r.job_ids[1]).state, JobState::kBlocked);
  EXPECT_EQ(Stored(r.job_ids[1]).owner, "alice");
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kQueued);
}

TEST_F(SchedulerTest, SubmitsAreGroupCommittedAndAnsweredAfterFlush) {
  int answered = 0;
  for (int i = 0; i < 3; ++i) {
    scheduler_->Submit(Exp({Stage("a")}), [&](absl::StatusOr<SubmitResult> r) {
      EXPECT_OK(r);
      ++answered;
    });
  }
  EXPECT_EQ(answered, 0);  // not acknowledged before it is durable
  EXPECT_EQ(scheduler_->pending_submits(), 3u);
  ExperimentFilter all;
  EXPECT_TRUE(store_.ListExperiments(all)->empty());
  scheduler_->FlushSubmits();
  EXPECT_EQ(answered, 3);
  EXPECT_EQ(store_.ListExperiments(all)->size(), 3u);
}

TEST_F(SchedulerTest, SubmitRejectsCycleUnknownNeedAndDuplicateIdsStoringNothing) {
  struct Case {
    std::vector<JobRecord> stages;
    std::string message;
  };
  std::vector<Case> cases = {
      {{Stage("a", {"b"}), Stage("b", {"a"})}, "dependency cycle"},
      {{Stage("a", {"zzz"})}, "stages[0].needs[0]: unknown stage 'zzz'"},
      {{Stage("a"), Stage("a")}, "stages[1].id: duplicate stage id 'a'"},
      {{Stage("a", {}, "sleep", 0)}, "stages[0].max_attempts"},
      {{}, "stages:"},
  };
  for (const Case& c : cases) {
    std::optional<absl::Status> got;
    scheduler_->Submit(Exp(c.stages), [&](absl::StatusOr<SubmitResult> r) { got = r.status(); });
    ASSERT_TRUE(got.has_value()) << c.message;
    EXPECT_EQ(got->code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(got->message().find(c.message), std::string::npos) << got->ToString();
  }
  scheduler_->FlushSubmits();
  EXPECT_TRUE(store_.ListExperiments(ExperimentFilter{})->empty());
}

TEST_F(SchedulerTest, DependantIsReleasedOnlyWhenAllNeedsSucceed) {
  SubmitResult r = Submit(Exp({Stage("a"), Stage("b"), Stage("c", {"a", "b"})}));
  std::string w = Register({"sleep"}, {}, 3);
  std::optional<LeaseGrant> a = Lease(w), b = Lease(w);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(Lease(w).has_value());  // c is blocked
  ASSERT_OK(Complete(*a, true));
  EXPECT_EQ(Stored(r.job_ids[2]).state, JobState::kBlocked);
  ASSERT_OK(Complete(*b, true));
  EXPECT_EQ(Stored(r.job_ids[2]).state, JobState::kQueued);
  std::optional<LeaseGrant> c = Lease(w);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->job.stage_id, "c");
  ASSERT_OK(Complete(*c, true));
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kSucceeded);
  EXPECT_GT(store_.GetExperiment(r.experiment_id)->finished_at_ms, 0);
  EXPECT_FALSE(scheduler_->ActiveJobForTest(r.job_ids[0]).has_value());  // dropped from memory
}

TEST_F(SchedulerTest, FailedNeedCancelsDependantsTransitively) {
  SubmitResult r =
      Submit(Exp({Stage("a"), Stage("b", {"a"}), Stage("c", {"b"}), Stage("d")}));
  std::string w = Register({"sleep"}, {}, 2);
  std::optional<LeaseGrant> a = Lease(w), d = Lease(w);
  ASSERT_TRUE(a && d);
  ASSERT_EQ(a->job.stage_id, "a");
  ASSERT_OK(Complete(*a, false, "loss is NaN"));
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kFailed);
  EXPECT_EQ(Stored(r.job_ids[0]).message, "loss is NaN");
  EXPECT_EQ(Stored(r.job_ids[1]).state, JobState::kCancelled);
  EXPECT_EQ(Stored(r.job_ids[1]).message, "need 'a' failed");
  EXPECT_EQ(Stored(r.job_ids[2]).state, JobState::kCancelled);
  EXPECT_EQ(Stored(r.job_ids[2]).message, "need 'b' was cancelled");
  // d is independent and still running: the experiment is not finished yet.
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kRunning);
  ASSERT_OK(Complete(*d, true));
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kFailed);
}

TEST_F(SchedulerTest, ExperimentGoesRunningOnFirstClaim) {
  SubmitResult r = Submit(Exp({Stage("a")}));
  std::string w = Register();
  ASSERT_TRUE(Lease(w).has_value());
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kRunning);
  JobRecord j = Stored(r.job_ids[0]);
  EXPECT_EQ(j.state, JobState::kRunning);
  EXPECT_EQ(j.attempt, 1);
  EXPECT_EQ(j.worker_id, w);
  EXPECT_EQ(j.lease_expires_at_ms, clock_.NowMs() + kTtl);
}

TEST_F(SchedulerTest, QueueOrderIsPriorityThenAgeThenId) {
  SubmitResult old_low = Submit(Exp({Stage("a")}, "alice", 0, "old-low"));
  clock_.AdvanceMs(10);
  SubmitResult high = Submit(Exp({Stage("a")}, "alice", 5, "high"));
  clock_.AdvanceMs(10);
  SubmitResult new_low = Submit(Exp({Stage("a")}, "alice", 0, "new-low"));
  std::string w = Register({"sleep"}, {}, 3);
  EXPECT_EQ(Lease(w)->job.experiment_id, high.experiment_id);
  EXPECT_EQ(Lease(w)->job.experiment_id, old_low.experiment_id);
  EXPECT_EQ(Lease(w)->job.experiment_id, new_low.experiment_id);
}

TEST_F(SchedulerTest, FairShareFavoursOwnerWithFewerRunningJobs) {
  SubmitResult a1 = Submit(Exp({Stage("a")}, "alice"));
  clock_.AdvanceMs(1);
  SubmitResult a2 = Submit(Exp({Stage("a")}, "alice"));
  clock_.AdvanceMs(1);
  SubmitResult a3 = Submit(Exp({Stage("a")}, "alice"));
  clock_.AdvanceMs(1);
  SubmitResult b1 = Submit(Exp({Stage("a")}, "bob"));
  std::string w = Register({"sleep"}, {}, 4);
  EXPECT_EQ(Lease(w)->job.experiment_id, a1.experiment_id);  // tie on running: oldest
  EXPECT_EQ(Lease(w)->job.experiment_id, b1.experiment_id);  // alice has 1 running, bob 0
  EXPECT_EQ(Lease(w)->job.experiment_id, a2.experiment_id);
  EXPECT_EQ(Lease(w)->job.experiment_id, a3.experiment_id);
  // Priority still beats fair share.
  SubmitResult a_high = Submit(Exp({Stage("a")}, "alice", 9));
  SubmitResult b_low = Submit(Exp({Stage("a")}, "bob", 0));
  std::string w2 = Register({"sleep"}, {}, 2);
  EXPECT_EQ(Lease(w2)->job.experiment_id, a_high.experiment_id);
  EXPECT_EQ(Lease(w2)->job.experiment_id, b_low.experiment_id);
}

TEST_F(SchedulerTest, CapabilityMatchingChecksKindDeviceCountAndMemory) {
  NewExperiment gpu_exp = Exp({Stage("t", {}, "train")});
  gpu_exp.jobs[0].resources.device = "cuda";
  gpu_exp.jobs[0].resources.gpus = 2;
  gpu_exp.jobs[0].resources.gpu_memory_gb = 16;
  SubmitResult gpu = Submit(gpu_exp);

  EXPECT_FALSE(Lease(Register({"sleep"}, {Gpu(80), Gpu(80)})).has_value());  // wrong kind
  EXPECT_FALSE(Lease(Register({"train"})).has_value());                     // no GPU
  EXPECT_FALSE(Lease(Register({"train"}, {Gpu(80)})).has_value());          // one GPU
  EXPECT_FALSE(Lease(Register({"train"}, {Gpu(8), Gpu(8)})).has_value());   // too small
  std::optional<LeaseGrant> g = Lease(Register({"train"}, {Gpu(24), Gpu(24)}));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->job.experiment_id, gpu.experiment_id);

  // A CPU job runs on a GPU worker that offers its kind.
  SubmitResult cpu = Submit(Exp({Stage("s")}));
  std::optional<LeaseGrant> c = Lease(Register({"sleep", "train"}, {Gpu(8)}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->job.experiment_id, cpu.experiment_id);
}

TEST_F(SchedulerTest, WorkerGetsNoMoreThanMaxConcurrentJobs) {
  Submit(Exp({Stage("a"), Stage("b")}));
  std::string w = Register({"sleep"}, {}, 1);
  std::optional<LeaseGrant> first = Lease(w);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(Lease(w).has_value());
  ASSERT_OK(Complete(*first, true));
  EXPECT_TRUE(Lease(w).has_value());
}

TEST_F(SchedulerTest, ExpiredLeaseRequeuesWithNextAttemptThenFails) {
  SubmitResult r = Submit(Exp({Stage("a", {}, "sleep", 2), Stage("b", {"a"})}));
  std::string w = Register();
  std::optional<LeaseGrant> g1 = Lease(w);
  ASSERT_TRUE(g1.has_value());
  EXPECT_EQ(g1->job.attempt, 1);
  clock_.AdvanceMs(kTtl - 1);
  scheduler_->Tick();
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kRunning);
  clock_.AdvanceMs(1);
  scheduler_->Tick();
  JobRecord j = Stored(r.job_ids[0]);
  EXPECT_EQ(j.state, JobState::kQueued);
  EXPECT_EQ(j.queued_at_ms, clock_.NowMs());
  EXPECT_NE(j.message.find("expired on attempt 1"), std::string::npos) << j.message;

  std::optional<LeaseGrant> g2 = Lease(w);
  ASSERT_TRUE(g2.has_value());
  EXPECT_EQ(g2->job.attempt, 2);
  EXPECT_GT(g2->job.fencing_token, g1->job.fencing_token);
  clock_.AdvanceMs(kTtl);
  scheduler_->Tick();
  j = Stored(r.job_ids[0]);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.message, "lease expired 2 times");
  EXPECT_EQ(Stored(r.job_ids[1]).state, JobState::kCancelled);
  EXPECT_EQ(Stored(r.job_ids[1]).message, "need 'a' failed");
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kFailed);
}

TEST_F(SchedulerTest, HeartbeatRenewsLeaseAndPersistsMetrics) {
  SubmitResult r = Submit(Exp({Stage("a")}));
  std::string w = Register();
  std::optional<LeaseGrant> g = Lease(w);
  ASSERT_TRUE(g.has_value());
  for (int i = 0; i < 3; ++i) {
    clock_.AdvanceMs(kTtl - 1);
    absl::StatusOr<bool> cancel = Beat(*g, 0.25 * (i + 1), {{"loss", 1.0 / (i + 1)}});
    ASSERT_OK(cancel);
    EXPECT_FALSE(*cancel);
    scheduler_->Tick();
  }
  JobRecord j = Stored(r.job_ids[0]);
  EXPECT_EQ(j.state, JobState::kRunning);
  EXPECT_DOUBLE_EQ(j.progress, 0.75);
  EXPECT_DOUBLE_EQ(j.metrics["loss"], 1.0 / 3);
  EXPECT_EQ(j.metrics_step, 10);
  EXPECT_EQ(j.lease_expires_at_ms, clock_.NowMs() + kTtl);
  absl::StatusOr<std::vector<MetricPoint>> points = store_.ListMetrics(r.job_ids[0]);
  ASSERT_OK(points);
  EXPECT_EQ(points->size(), 3u);
}

TEST_F(SchedulerTest, StaleFencingTokenIsRejectedAndChangesNothing) {
  SubmitResult r = Submit(Exp({Stage("a")}));
  std::string w = Register();
  std::optional<LeaseGrant> old_lease = Lease(w);
  ASSERT_TRUE(old_lease.has_value());
  clock_.AdvanceMs(kTtl);
  scheduler_->Tick();  // expired -> requeued
  std::optional<LeaseGrant> lease = Lease(w);
  ASSERT_TRUE(lease.has_value());
  JobRecord before = Stored(r.job_ids[0]);

  EXPECT_EQ(Beat(*old_lease).status().code(), absl::StatusCode::kFailedPrecondition);
  absl::Status logs = scheduler_->AppendLogs(r.job_ids[0], old_lease->job.fencing_token, {"x"}).status();
  EXPECT_EQ(logs.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(logs.message().find("stale fencing token"), std::string::npos) << logs;
  EXPECT_EQ(scheduler_->CheckLease(r.job_ids[0], old_lease->job.fencing_token).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_
                ->RecordArtifact(r.job_ids[0], old_lease->job.fencing_token, "model.pt", 3, kSha)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Complete(*old_lease, true).code(), absl::StatusCode::kFailedPrecondition);

  JobRecord after = Stored(r.job_ids[0]);
  EXPECT_EQ(after.state, JobState::kRunning);
  EXPECT_EQ(after.fencing_token, before.fencing_token);
  EXPECT_EQ(after.lease_expires_at_ms, before.lease_expires_at_ms);
  EXPECT_TRUE(store_.ReadLogs(r.experiment_id, "", 0, 100)->empty());
  EXPECT_TRUE(store_.ListArtifacts(r.experiment_id, "")->empty());

  // The current token works, and a finished job rejects every token.
  EXPECT_OK(scheduler_->AppendLogs(r.job_ids[0], lease->job.fencing_token, {"hello"}));
  ASSERT_OK(Complete(*lease, true));
  EXPECT_EQ(Beat(*lease).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->CheckLease("no-such-job", 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, CancelStopsRunningJobsViaHeartbeatAndCancelsTheRest) {
  SubmitResult r = Submit(Exp({Stage("a"), Stage("b"), Stage("c", {"a"})}));
  std::string w = Register();
  std::optional<LeaseGrant> a = Lease(w);
  ASSERT_TRUE(a.has_value());
  absl::StatusOr<ExperimentRecord> cancelled = scheduler_->CancelExperiment(r.experiment_id);
  ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->state, ExperimentState::kCancelled);
  EXPECT_EQ(cancelled->finished_at_ms, 0);  // a is still running
  EXPECT_EQ(Stored(r.job_ids[1]).state, JobState::kCancelled);
  EXPECT_EQ(Stored(r.job_ids[1]).message, "cancelled by user");
  EXPECT_EQ(Stored(r.job_ids[2]).state, JobState::kCancelled);
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kRunning);

  absl::StatusOr<bool> stop = Beat(*a);
  ASSERT_OK(stop);
  EXPECT_TRUE(*stop);
  ASSERT_OK(Complete(*a, true));  // even a "success" after cancel is a cancel
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kCancelled);
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kCancelled);
  EXPECT_GT(store_.GetExperiment(r.experiment_id)->finished_at_ms, 0);
  // Cancelling again is a no-op; a finished one cannot be cancelled.
  EXPECT_OK(scheduler_->CancelExperiment(r.experiment_id));
  EXPECT_EQ(scheduler_->CancelExperiment("exp-nope").status().code(), absl::StatusCode::kNotFound);
  SubmitResult done = Submit(Exp({Stage("a")}));
  std::optional<LeaseGrant> g = Lease(w);
  ASSERT_OK(Complete(*g, true));
  EXPECT_EQ(scheduler_->CancelExperiment(done.experiment_id).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, CancelledRunningJobWhoseLeaseExpiresBecomesCancelled) {
  SubmitResult r = Submit(Exp({Stage("a")}));
  std::string w = Register();
  ASSERT_TRUE(Lease(w).has_value());
  ASSERT_OK(scheduler_->CancelExperiment(r.experiment_id));
  clock_.AdvanceMs(kTtl);
  scheduler_->Tick();
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kCancelled);
  EXPECT_EQ(StoredState(r.experiment_id), ExperimentState::kCancelled);
}

TEST_F(SchedulerTest, ParkedLongPollIsMatchedWhenAJobIsQueued) {
  std::string w = Register();
  std::optional<absl::StatusOr<std::optional<LeaseGrant>>> got;
  scheduler_->LeaseJob(w, 30'000, [&](auto r) { got = std::move(r); });
  EXPECT_FALSE(got.has_value());
  EXPECT_EQ(scheduler_->parked_leases(), 1u);
  SubmitResult r = Submit(Exp({Stage("a"), Stage("b", {"a"})}));
  ASSERT_TRUE(got.has_value());
  ASSERT_OK(*got);
  ASSERT_TRUE(got->value().has_value());
  LeaseGrant a = *got->value();
  EXPECT_EQ(a.job.id, r.job_ids[0]);
  EXPECT_EQ(scheduler_->parked_leases(), 0u);

  // A job released by the DAG also wakes a parked poll.
  got.reset();
  scheduler_->LeaseJob(w, 30'000, [&](auto r) { got = std::move(r); });
  EXPECT_FALSE(got.has_value());  // the worker's only slot is busy
  ASSERT_OK(Complete(a, true));
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->value().has_value());
  EXPECT_EQ(got->value()->job.id, r.job_ids[1]);
}

TEST_F(SchedulerTest, ParkedLongPollIsAnsweredEmptyAtItsDeadline) {
  std::string w = Register();
  std::optional<absl::StatusOr<std::optional<LeaseGrant>>> got;
  scheduler_->LeaseJob(w, 5'000, [&](auto r) { got = std::move(r); });
  clock_.AdvanceMs(4'999);
  scheduler_->Tick();
  EXPECT_FALSE(got.has_value());
  clock_.AdvanceMs(1);
  scheduler_->Tick();
  ASSERT_TRUE(got.has_value());
  ASSERT_OK(*got);
  EXPECT_FALSE(got->value().has_value());

  // A caller that went away is dropped instead of being handed a job.
  bool gone = false;
  got.reset();
  scheduler_->LeaseJob(w, 5'000, [&](auto r) { got = std::move(r); }, [&] { return gone; });
  gone = true;
  SubmitResult r = Submit(Exp({Stage("a")}));
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->value().has_value());
  EXPECT_EQ(Stored(r.job_ids[0]).state, JobState::kQueued);
}

TEST_F(SchedulerTest, LeaseOfUnknownWorkerIsNotFound) {
  std::optional<absl::Status> got;
  scheduler_->LeaseJob("w-unknown", 0, [&](auto r) { got = r.status(); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, RegisterWorkerValidatesAndKeepsItsId) {
  WorkerRecord bad;
  EXPECT_EQ(scheduler_->RegisterWorker(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.job_kinds = {"sleep"};
  bad.max_concurrent_jobs = -1;
  EXPECT_EQ(scheduler_->RegisterWorker(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.max_concurrent_jobs = 0;
  bad.devices = {DeviceRecord{"tpu", "x", 1}};
  absl::Status s = scheduler_->RegisterWorker(bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("devices[0].type"), std::string::npos);

  std::string id = Register();
  clock_.AdvanceMs(100);
  WorkerRecord again;
  again.id = id;
  again.job_kinds = {"sleep", "train"};
  absl::StatusOr<WorkerRecord> r = scheduler_->RegisterWorker(again);
  ASSERT_OK(r);
  EXPECT_EQ(r->id, id);
  EXPECT_EQ(r->max_concurrent_jobs, 1);
  EXPECT_EQ(r->registered_at_ms, clock_.NowMs() - 100);
  EXPECT_EQ(scheduler_->ListWorkers().size(), 1u);
}

TEST_F(SchedulerTest, SilentWorkerIsMarkedDeadAndAliveAgainWhenItCalls) {
  std::string w = Register();
  clock_.AdvanceMs(3 * kHeartbeat);
  scheduler_->Tick();
  EXPECT_TRUE(scheduler_->ListWorkers()[0].record.alive);
  clock_.AdvanceMs(1);
  scheduler_->Tick();
  EXPECT_FALSE(scheduler_->ListWorkers()[0].record.alive);
  EXPECT_FALSE((*store_.ListWorkers())[0].alive);
  Lease(w);  // any call counts as a sign of life
  EXPECT_TRUE(scheduler_->ListWorkers()[0].record.alive);
  EXPECT_TRUE((*store_.ListWorkers())[0].alive);
}

// A long-poll longer than the dead limit (the daemon waits 10 s, the limit is
// 3 heartbeats = 6 s by default) must not make an idle, connected worker
// flap to dead and back; one whose call was cancelled (gone) may die.
TEST_F(SchedulerTest, WorkerParkedInLongPollStaysAlive) {
  std::string w = Register();
  std::optional<absl::StatusOr<std::optional<LeaseGrant>>> got;
  bool gone = false;
  scheduler_->LeaseJob(w, 10 * kHeartbeat, [&](auto r) { got = std::move(r); }, [&] { return gone; });
  for (int i = 0; i < 8; ++i) {
    clock_.AdvanceMs(kHeartbeat);
    scheduler_->Tick();
    EXPECT_TRUE(scheduler_->ListWorkers()[0].record.alive) << "after " << (i + 1) << " intervals";
  }
  EXPECT_FALSE(got.has_value());  // still parked
  gone = true;
  clock_.AdvanceMs(3 * kHeartbeat + 1);
  scheduler_->Tick();
  EXPECT_FALSE(scheduler_->ListWorkers()[0].record.alive);
}

TEST_F(SchedulerTest, LeaseCarriesInputsOfNeedsAndOwnArtifactsOnRetry) {
  SubmitResult r = Submit(Exp({Stage("pretrain"), Stage("extract", {"pretrain"})}));
  std::string w = Register();
  std::optional<LeaseGrant> p = Lease(w);
  ASSERT_OK(scheduler_->RecordArtifact(p->job.id, p->job.fencing_token, "checkpoints/final.pt", 3,
                                       kSha));
  ASSERT_OK(Complete(*p, true));
  std::optional<LeaseGrant> e = Lease(w);
  ASSERT_TRUE(e.has_value());
  ASSERT_EQ(e->inputs.size(), 1u);
  EXPECT_EQ(e->inputs[0].stage_id, "pretrain");
  EXPECT_EQ(e->inputs[0].name, "checkpoints/final.pt");
  EXPECT_TRUE(e->own_artifacts.empty());
  ASSERT_OK(scheduler_->RecordArtifact(e->job.id, e->job.fencing_token, "checkpoints/step_10.pt",
                                       3, kSha));
  clock_.AdvanceMs(kTtl);
  scheduler_->Tick();
  std::optional<LeaseGrant> retry = Lease(w);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->job.attempt, 2);
  ASSERT_EQ(retry->own_artifacts.size(), 1u);
  EXPECT_EQ(retry->own_artifacts[0].name, "checkpoints/step_10.pt");
  EXPECT_EQ(retry->lease_ttl_ms, kTtl);
  (void)r;
}

TEST_F(SchedulerTest, ChangesAndLogsAreNotifiedToSubscribers) {
  SubmitResult r = Submit(Exp({Stage("a")}));
  int changed = 0, logs = 0;
  uint64_t sub = hub_.Subscribe(r.experiment_id, [&](EventHub::Topic t) {
    (t == EventHub::Topic::kLogs ? logs : changed)++;
  });
  std::string w = Register();
  std::optional<LeaseGrant> g = Lease(w);
  EXPECT_EQ(changed, 1);
  ASSERT_OK(scheduler_->AppendLogs(g->job.id, g->job.fencing_token, {"l1", "l2"}));
  EXPECT_EQ(logs, 1);
  ASSERT_OK(Beat(*g));
  EXPECT_EQ(changed, 2);
  hub_.Unsubscribe(sub);
  ASSERT_OK(Complete(*g, true));
  EXPECT_EQ(changed, 2);
  EXPECT_EQ(hub_.SubscriberCountForTest(), 0u);
}

TEST_F(SchedulerTest, RestartRecoversEverythingFromTheStore) {
  SubmitResult queued = Submit(Exp({Stage("a"), Stage("b", {"a"})}, "alice", 0, "queued"));
  SubmitResult running = Submit(Exp({Stage("a")}, "bob", 1, "running"));
  SubmitResult cancelling = Submit(Exp({Stage("a")}, "carol", 2, "cancelling"));
  std::string w = Register({"sleep"}, {}, 2);
  std::optional<LeaseGrant> rc = Lease(w), rr = Lease(w);
  ASSERT_EQ(rc->job.experiment_id, cancelling.experiment_id);
  ASSERT_EQ(rr->job.experiment_id, running.experiment_id);
  ASSERT_OK(scheduler_->CancelExperiment(cancelling.experiment_id));

  // "kill -9": drop the core, keep the store, start another one later.
  scheduler_.reset();
  clock_.AdvanceMs(kTtl * 5);  // far past the stored lease expiry
  Start(store_);

  // Running leases got a fresh TTL: the surviving worker keeps its job...
  ASSERT_TRUE(scheduler_->ActiveJobForTest(rr->job.id).has_value());
  EXPECT_EQ(scheduler_->ActiveJobForTest(rr->job.id)->state, JobState::kRunning);
  scheduler_->Tick();
  EXPECT_EQ(Stored(rr->job.id).state, JobState::kRunning);
  ASSERT_OK(Beat(*rr));
  // ...and the cancel request survived the restart.
  absl::StatusOr<bool> stop = Beat(*rc);
  ASSERT_OK(stop);
  EXPECT_TRUE(*stop);
  // Workers were recovered; the queued job is leasable with the DAG intact.
  ASSERT_EQ(scheduler_->ListWorkers().size(), 1u);
  std::string w2 = Register();
  std::optional<LeaseGrant> qa = Lease(w2);
  ASSERT_TRUE(qa.has_value());
  EXPECT_EQ(qa->job.id, queued.job_ids[0]);
  ASSERT_OK(Complete(*qa, true));
  EXPECT_EQ(Stored(queued.job_ids[1]).state, JobState::kQueued);

  // The first worker "died" during the restart: its leases expire by the TTL.
  clock_.AdvanceMs(kTtl);
  scheduler_->Tick();
  JobRecord requeued = Stored(rr->job.id);
  EXPECT_EQ(requeued.state, JobState::kQueued);
  EXPECT_EQ(requeued.attempt, 1);
  EXPECT_EQ(Stored(rc->job.id).state, JobState::kCancelled);
  EXPECT_EQ(StoredState(cancelling.experiment_id), ExperimentState::kCancelled);
}

TEST(SchedulerFaultTest, FailedStoreWriteLeavesMemoryUnchangedAndReturnsTheError) {
  FakeClock clock;
  MemoryStore base;
  FaultyStore store(base);
  EventHub hub;
  SchedulerOptions options;
  options.lease_ttl_ms = kTtl;
  Scheduler scheduler(store, clock, hub, options);
  ASSERT_OK(scheduler.Recover());

  // A failed group commit fails every submit in it and stores nothing.
  store.FailNextWrites(1, absl::UnavailableError("disk on fire"));
  std::vector<absl::Status> answers;
  for (int i = 0; i < 2; ++i) {
    scheduler.Submit(Exp({Stage("a")}), [&](absl::StatusOr<SubmitResult> r) {
      answers.push_back(r.status());
    });
  }
  scheduler.FlushSubmits();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(answers[1].code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(base.ListExperiments(ExperimentFilter{})->empty());

  std::optional<SubmitResult> sub;
  scheduler.Submit(Exp({Stage("a"), Stage("b", {"a"})}),
                   [&](absl::StatusOr<SubmitResult> r) { sub = *r; });
  scheduler.FlushSubmits();
  ASSERT_TRUE(sub.has_value());
  WorkerRecord w;
  w.job_kinds = {"sleep"};
  std::string wid = scheduler.RegisterWorker(w)->id;
  std::optional<LeaseGrant> g;
  scheduler.LeaseJob(wid, 0, [&](auto r) { g = **r; });
  ASSERT_TRUE(g.has_value());

  // Completion fails in the store: memory still RUNNING, the dependant still
  // BLOCKED, and the same call succeeds once the store is back.
  store.FailNextWrites(1, absl::InternalError("I/O error"));
  CompletionReport c{g->job.id, g->job.fencing_token, true, "", {}};
  EXPECT_EQ(scheduler.CompleteJob(c).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(scheduler.ActiveJobForTest(g->job.id)->state, JobState::kRunning);
  EXPECT_EQ(scheduler.ActiveJobForTest(sub->job_ids[1])->state, JobState::kBlocked);
  EXPECT_EQ(base.GetJob(g->job.id)->state, JobState::kRunning);

  // A failed heartbeat does not renew the lease in memory either.
  store.FailNextWrites(1, absl::InternalError("I/O error"));
  clock.AdvanceMs(kTtl / 2);
  HeartbeatReport h{"", g->job.id, g->job.fencing_token, 0.5, 1, {{"loss", 1}}};
  EXPECT_FALSE(scheduler.Heartbeat(h).ok());
  EXPECT_EQ(scheduler.ActiveJobForTest(g->job.id)->lease_expires_at_ms,
            g->job.lease_expires_at_ms);
  EXPECT_TRUE(scheduler.ActiveJobForTest(g->job.id)->metrics.empty());

  // A failed cancel changes nothing.
  store.FailNextWrites(1, absl::InternalError("I/O error"));
  EXPECT_FALSE(scheduler.CancelExperiment(sub->experiment_id).ok());
  EXPECT_FALSE(scheduler.CancelRequestedForTest(g->job.id));
  EXPECT_EQ(scheduler.ActiveJobForTest(sub->job_ids[1])->state, JobState::kBlocked);

  ASSERT_OK(scheduler.CompleteJob(c));
  EXPECT_EQ(scheduler.ActiveJobForTest(sub->job_ids[1])->state, JobState::kQueued);
  EXPECT_EQ(base.GetJob(sub->job_ids[1])->state, JobState::kQueued);
}

}  // namespace
}  // namespace topolab::server
