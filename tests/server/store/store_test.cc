// The shared Store contract test: every behaviour runs against MemoryStore,
// SqliteStore(":memory:") and a file-backed SqliteStore (which also uses the
// separate reader connections), so the implementations cannot drift apart.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"
#include "tests/server/store/store_test_util.h"
#include "tests/test_util.h"

namespace topolab::server {
namespace {

using ::topolab::server::testing::Describe;
using ::topolab::server::testing::DescribeAll;
using ::topolab::server::testing::MakeExperiment;

// --- the implementations under test

struct MemoryImpl {
  static std::unique_ptr<Store> Make(const std::string&) { return std::make_unique<MemoryStore>(); }
};
struct SqliteMemoryImpl {
  static std::unique_ptr<Store> Make(const std::string&) {
    auto s = SqliteStore::Open(":memory:");
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
};
struct SqliteFileImpl {
  static std::unique_ptr<Store> Make(const std::string& dir) {
    auto s = SqliteStore::Open(dir + "/topolab.db");
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
};

template <typename Impl>
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "topolab-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = Impl::Make(dir_);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Store& store() { return *store_; }

  // Creates one experiment (default shape of MakeExperiment).
  void Create(const NewExperiment& e) { ASSERT_OK(store().CreateExperiments({e})); }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

using Implementations = ::testing::Types<MemoryImpl, SqliteMemoryImpl, SqliteFileImpl>;
class ImplNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    if (std::is_same_v<T, MemoryImpl>) return "Memory";
    if (std::is_same_v<T, SqliteMemoryImpl>) return "SqliteInMemory";
    return "SqliteFile";
  }
};
TYPED_TEST_SUITE(StoreTest, Implementations, ImplNames);

// --- experiments and jobs

TYPED_TEST(StoreTest, CreateThenGetRoundTripsEveryField) {
  NewExperiment e = MakeExperiment("e1", 1000, 2);
  e.experiment.config_yaml = "name: \"q'uote\"\n# ünïcödé\n\ttab";
  JobRecord& j = e.jobs[1];
  j.resources = {"cuda", 2, 11.5};
  j.needs = {"s0", "other \"stage\""};
  j.attempt = 1;
  j.max_attempts = 5;
  j.fencing_token = 7;
  j.worker_id = "w1";
  j.lease_expires_at_ms = 99;
  j.progress = 0.25;
  j.message = "";
  j.metrics = {{"loss", 0.5},
               {"nan_metric", std::numeric_limits<double>::quiet_NaN()},
               {"inf_metric", std::numeric_limits<double>::infinity()},
               {"neg_inf", -std::numeric_limits<double>::infinity()}};
  j.metrics_step = 12;
  j.started_at_ms = 5;
  j.finished_at_ms = 6;
  this->Create(e);

  auto x = this->store().GetExperiment("e1");
  ASSERT_OK(x);
  EXPECT_EQ(Describe(*x), Describe(e.experiment));
  for (const JobRecord& want : e.jobs) {
    auto got = this->store().GetJob(want.id);
    ASSERT_OK(got);
    EXPECT_EQ(Describe(*got), Describe(want));
  }
}

TYPED_TEST(StoreTest, GetUnknownIsNotFound) {
  EXPECT_EQ(this->store().GetExperiment("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().ListJobs("nope").status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreTest, CreateFillsEmptyJobExperimentId) {
  NewExperiment e = MakeExperiment("e1", 1, 1);
  e.jobs[0].experiment_id.clear();
  this->Create(e);
  auto j = this->store().GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->experiment_id, "e1");
}

TYPED_TEST(StoreTest, CreateExperimentsIsAllOrNothing) {
  this->Create(MakeExperiment("e1", 1));
  // e2 is new but e1 exists: the whole batch is refused, e2 included.
  absl::Status s = this->store().CreateExperiments({MakeExperiment("e2", 2), MakeExperiment("e1", 3)});
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(this->store().GetExperiment("e2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().GetJob("e2-j0").status().code(), absl::StatusCode::kNotFound);
  auto e1 = this->store().GetExperiment("e1");
  ASSERT_OK(e1);
  EXPECT_EQ(e1->created_at_ms, 1);
}

TYPED_TEST(StoreTest, CreateRefusesAJobIdThatExistsElsewhere) {
  this->Create(MakeExperiment("e1", 1, 1));
  NewExperiment e2 = MakeExperiment("e2", 2, 1);
  e2.jobs[0].id = "e1-j0";
  absl::Status s = this->store().CreateExperiments({e2});
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(this->store().GetExperiment("e2").status().code(), absl::StatusCode::kNotFound);
  auto j = this->store().GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->experiment_id, "e1");
}

TYPED_TEST(StoreTest, CreateRejectsMalformedBatchesAndStoresNothing) {
  struct Case {
    const char* what;
    std::vector<NewExperiment> batch;
  };
  std::vector<Case> cases;
  {
    NewExperiment e = MakeExperiment("", 1);
    cases.push_back({"empty experiment id", {e}});
  }
  {
    NewExperiment e = MakeExperiment("x", 1);
    e.jobs[1].id = "";
    cases.push_back({"empty job id", {e}});
  }
  {
    NewExperiment e = MakeExperiment("x", 1);
    e.jobs[1].stage_id = "s0";
    cases.push_back({"duplicate stage id", {e}});
  }
  {
    NewExperiment e = MakeExperiment("x", 1);
    e.jobs[1].stage_id = "";
    cases.push_back({"empty stage id", {e}});
  }
  {
    NewExperiment e = MakeExperiment("x", 1);
    e.jobs[0].experiment_id = "other";
    cases.push_back({"job names another experiment", {e}});
  }
  {
    NewExperiment e = MakeExperiment("x", 1);
    e.jobs[0].state = static_cast<JobState>(42);
    cases.push_back({"invalid job state", {e}});
  }
  {
    NewExperiment e = MakeExperiment("x", 1);
    e.experiment.state = static_cast<ExperimentState>(0);
    cases.push_back({"invalid experiment state", {e}});
  }
  cases.push_back({"experiment twice in batch", {MakeExperiment("x", 1), MakeExperiment("x", 2)}});
  {
    NewExperiment a = MakeExperiment("x", 1, 1);
    NewExperiment b = MakeExperiment("y", 1, 1);
    b.jobs[0].id = a.jobs[0].id;
    cases.push_back({"job twice in batch", {a, b}});
  }
  for (const Case& c : cases) {
    absl::Status s = this->store().CreateExperiments(c.batch);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << s;
  }
  auto all = this->store().ListExperiments({});
  ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
  auto active = this->store().ListActiveJobs();
  ASSERT_OK(active);
  EXPECT_TRUE(active->empty());
}

TYPED_TEST(StoreTest, CreateEmptyBatchIsOk) { EXPECT_OK(this->store().CreateExperiments({})); }

TYPED_TEST(StoreTest, ListJobsKeepsStageOrder) {
  NewExperiment e = MakeExperiment("e1", 1, 4);
  // Ids deliberately not in stage order.
  e.jobs[0].id = "zz";
  e.jobs[1].id = "aa";
  e.jobs[2].id = "mm";
  e.jobs[3].id = "bb";
  this->Create(e);
  this->Create(MakeExperiment("e2", 2, 3));
  auto jobs = this->store().ListJobs("e1");
  ASSERT_OK(jobs);
  std::vector<std::string> stages;
  for (const JobRecord& j : *jobs) stages.push_back(j.stage_id);
  EXPECT_EQ(stages, (std::vector<std::string>{"s0", "s1", "s2", "s3"}));
  EXPECT_EQ((*jobs)[0].id, "zz");
  NewExperiment empty = MakeExperiment("e3", 3, 0);
  this->Create(empty);
  auto none = this->store().ListJobs("e3");
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

std::vector<std::string> Ids(const std::vector<ExperimentRecord>& v) {
  std::vector<std::string> out;
  for (const ExperimentRecord& x : v) out.push_back(x.id);
  return out;
}

TYPED_TEST(StoreTest, ListExperimentsNewestFirstWithPaging) {
  // created_at ties are broken by id, descending.
  this->Create(MakeExperiment("a", 10));
  this->Create(MakeExperiment("b", 30));
  this->Create(MakeExperiment("c", 20));
  this->Create(MakeExperiment("d", 30));
  this->Create(MakeExperiment("e", 5));
  this->Create(MakeExperiment("f", 30));
  this->Create(MakeExperiment("g", 40));
  const std::vector<std::string> all = {"g", "f", "d", "b", "c", "a", "e"};

  ExperimentFilter f;
  auto full = this->store().ListExperiments(f);
  ASSERT_OK(full);
  EXPECT_EQ(Ids(*full), all);

  std::vector<std::string> paged;
  f.limit = 3;
  for (int page = 0; page < 10; ++page) {
    auto rows = this->store().ListExperiments(f);
    ASSERT_OK(rows);
    EXPECT_LE(rows->size(), 3u);
    for (const ExperimentRecord& x : *rows) paged.push_back(x.id);
    if (rows->size() < 3) break;
    f.before_created_at_ms = rows->back().created_at_ms;
    f.before_id = rows->back().id;
  }
  EXPECT_EQ(paged, all);
}

TYPED_TEST(StoreTest, ListExperimentsFiltersByNameOwnerState) {
  this->Create(MakeExperiment("a", 1, 1, "mnist", "alice"));
  this->Create(MakeExperiment("b", 2, 1, "mnist", "bob"));
  this->Create(MakeExperiment("c", 3, 1, "tdann", "alice"));
  this->Create(MakeExperiment("d", 4, 1, "mnist", "alice"));
  StateUpdate u;
  u.experiments.push_back({"d", ExperimentState::kSucceeded, 50});
  u.experiments.push_back({"b", ExperimentState::kSucceeded, 51});
  ASSERT_OK(this->store().Apply(u));

  auto list = [&](ExperimentFilter f) {
    auto rows = this->store().ListExperiments(f);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? Ids(*rows) : std::vector<std::string>{};
  };
  ExperimentFilter f;
  f.name = "mnist";
  EXPECT_EQ(list(f), (std::vector<std::string>{"d", "b", "a"}));
  f = {};
  f.owner = "alice";
  EXPECT_EQ(list(f), (std::vector<std::string>{"d", "c", "a"}));
  f = {};
  f.state = ExperimentState::kSucceeded;
  EXPECT_EQ(list(f), (std::vector<std::string>{"d", "b"}));
  f = {};
  f.name = "mnist";
  f.owner = "alice";
  f.state = ExperimentState::kQueued;
  EXPECT_EQ(list(f), (std::vector<std::string>{"a"}));
  f = {};
  f.owner = "alice";
  f.limit = 1;
  f.before_created_at_ms = 4;
  f.before_id = "d";
  EXPECT_EQ(list(f), (std::vector<std::string>{"c"}));
  f = {};
  f.owner = "nobody";
  EXPECT_TRUE(list(f).empty());
}

TYPED_TEST(StoreTest, ListExperimentsRejectsNonPositiveLimit) {
  ExperimentFilter f;
  f.limit = 0;
  EXPECT_EQ(this->store().ListExperiments(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TYPED_TEST(StoreTest, ListActiveJobsReturnsNonTerminalJobsInIdOrder) {
  NewExperiment e = MakeExperiment("e1", 1, 6);
  const JobState states[] = {JobState::kQueued,    JobState::kBlocked, JobState::kRunning,
                             JobState::kSucceeded, JobState::kFailed,  JobState::kCancelled};
  for (int i = 0; i < 6; ++i) e.jobs[i].state = states[i];
  this->Create(e);
  this->Create(MakeExperiment("e0", 2, 1));
  auto active = this->store().ListActiveJobs();
  ASSERT_OK(active);
  std::vector<std::string> ids;
  for (const JobRecord& j : *active) ids.push_back(j.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"e0-j0", "e1-j0", "e1-j1", "e1-j2"}));

  // A job that finishes leaves the active set.
  auto j = this->store().GetJob("e1-j2");
  ASSERT_OK(j);
  j->state = JobState::kSucceeded;
  StateUpdate u;
  u.jobs.push_back(*j);
  ASSERT_OK(this->store().Apply(u));
  active = this->store().ListActiveJobs();
  ASSERT_OK(active);
  EXPECT_EQ(active->size(), 3u);
}

// --- ClaimJob

TYPED_TEST(StoreTest, ClaimMovesQueuedJobToRunningAndBumpsAttemptAndToken) {
  this->Create(MakeExperiment("e1", 1, 2));
  auto before = this->store().GetJob("e1-j0");
  ASSERT_OK(before);
  auto claimed = this->store().ClaimJob("e1-j0", "w1", 100, 400);
  ASSERT_OK(claimed);
  JobRecord want = *before;
  want.state = JobState::kRunning;
  want.worker_id = "w1";
  want.attempt = 1;
  want.fencing_token = 1;
  want.started_at_ms = 100;
  want.lease_expires_at_ms = 400;
  EXPECT_EQ(Describe(*claimed), Describe(want));
  auto stored = this->store().GetJob("e1-j0");
  ASSERT_OK(stored);
  EXPECT_EQ(Describe(*stored), Describe(want));
}

TYPED_TEST(StoreTest, ClaimOnlyFromQueued) {
  this->Create(MakeExperiment("e1", 1, 2));
  ASSERT_OK(this->store().ClaimJob("e1-j0", "w1", 100, 400));
  // Already running: a second claim (another worker racing) loses and changes nothing.
  auto again = this->store().ClaimJob("e1-j0", "w2", 101, 401);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  auto j = this->store().GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->worker_id, "w1");
  EXPECT_EQ(j->fencing_token, 1);
  EXPECT_EQ(j->attempt, 1);
  // Blocked.
  auto blocked = this->store().ClaimJob("e1-j1", "w1", 100, 400);
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kFailedPrecondition);
  auto j1 = this->store().GetJob("e1-j1");
  ASSERT_OK(j1);
  EXPECT_EQ(j1->state, JobState::kBlocked);
  EXPECT_EQ(j1->fencing_token, 0);
  // Terminal states.
  for (JobState s : {JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    j1->state = s;
    StateUpdate u;
    u.jobs.push_back(*j1);
    ASSERT_OK(this->store().Apply(u));
    EXPECT_EQ(this->store().ClaimJob("e1-j1", "w1", 1, 2).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(this->store().ClaimJob("nope", "w1", 1, 2).status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreTest, ClaimAfterRequeueStartsNextAttemptWithNewToken) {
  this->Create(MakeExperiment("e1", 1, 1));
  auto first = this->store().ClaimJob("e1-j0", "w1", 100, 400);
  ASSERT_OK(first);
  // Lease expired: the core requeues the job.
  JobRecord requeued = *first;
  requeued.state = JobState::kQueued;
  requeued.worker_id.clear();
  requeued.lease_expires_at_ms = 0;
  requeued.queued_at_ms = 500;
  StateUpdate u;
  u.jobs.push_back(requeued);
  ASSERT_OK(this->store().Apply(u));
  auto second = this->store().ClaimJob("e1-j0", "w2", 600, 900);
  ASSERT_OK(second);
  EXPECT_EQ(second->attempt, 2);
  EXPECT_EQ(second->fencing_token, 2);
  EXPECT_EQ(second->worker_id, "w2");
  EXPECT_EQ(second->started_at_ms, 600);
  EXPECT_EQ(second->queued_at_ms, 500);
}

TYPED_TEST(StoreTest, ConcurrentClaimsOfOneJobHaveOneWinner) {
  this->Create(MakeExperiment("e1", 1, 1));
  std::atomic<int> won{0}, lost{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto r = this->store().ClaimJob("e1-j0", "w" + std::to_string(t), 1, 2);
      if (r.ok()) {
        ++won;
      } else if (r.status().code() == absl::StatusCode::kFailedPrecondition) {
        ++lost;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), 3);
  auto j = this->store().GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->fencing_token, 1);
}

// --- Apply

TYPED_TEST(StoreTest, ApplyWritesJobsExperimentsAndMetrics) {
  this->Create(MakeExperiment("e1", 1, 2));
  auto j0 = this->store().GetJob("e1-j0");
  ASSERT_OK(j0);
  j0->state = JobState::kSucceeded;
  j0->progress = 1.0;
  j0->metrics = {{"acc", 0.9}};
  j0->metrics_step = 10;
  j0->finished_at_ms = 70;
  j0->message = "done";
  auto j1 = this->store().GetJob("e1-j1");
  ASSERT_OK(j1);
  j1->state = JobState::kQueued;
  j1->queued_at_ms = 70;
  StateUpdate u;
  u.jobs = {*j0, *j1};
  u.experiments.push_back({"e1", ExperimentState::kRunning, 0});
  u.metrics.push_back({"e1-j0", 10, "acc", 0.9, 69});
  ASSERT_OK(this->store().Apply(u));
  auto g0 = this->store().GetJob("e1-j0");
  auto g1 = this->store().GetJob("e1-j1");
  ASSERT_OK(g0);
  ASSERT_OK(g1);
  EXPECT_EQ(Describe(*g0), Describe(*j0));
  EXPECT_EQ(Describe(*g1), Describe(*j1));
  auto x = this->store().GetExperiment("e1");
  ASSERT_OK(x);
  EXPECT_EQ(x->state, ExperimentState::kRunning);
  auto m = this->store().ListMetrics("e1-j0");
  ASSERT_OK(m);
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ(Describe((*m)[0]), Describe(MetricPoint{"e1-j0", 10, "acc", 0.9, 69}));
}

TYPED_TEST(StoreTest, ApplyIsAtomic) {
  this->Create(MakeExperiment("e1", 1, 2));
  auto j0 = this->store().GetJob("e1-j0");
  ASSERT_OK(j0);
  const std::string j0_before = Describe(*j0);
  auto x_before = this->store().GetExperiment("e1");
  ASSERT_OK(x_before);
  JobRecord changed = *j0;
  changed.state = JobState::kFailed;
  changed.message = "should not stick";

  auto expect_nothing_applied = [&](const char* what) {
    auto g = this->store().GetJob("e1-j0");
    ASSERT_OK(g);
    EXPECT_EQ(Describe(*g), j0_before) << what;
    auto x = this->store().GetExperiment("e1");
    ASSERT_OK(x);
    EXPECT_EQ(Describe(*x), Describe(*x_before)) << what;
    auto m = this->store().ListMetrics("e1-j0");
    ASSERT_OK(m);
    EXPECT_TRUE(m->empty()) << what;
  };

  {  // An unknown job after a valid one.
    JobRecord ghost = changed;
    ghost.id = "ghost";
    StateUpdate u;
    u.jobs = {changed, ghost};
    u.experiments.push_back({"e1", ExperimentState::kFailed, 9});
    u.metrics.push_back({"e1-j0", 1, "loss", 1.0, 1});
    EXPECT_EQ(this->store().Apply(u).code(), absl::StatusCode::kNotFound);
    expect_nothing_applied("unknown job");
  }
  {  // An unknown experiment.
    StateUpdate u;
    u.jobs = {changed};
    u.experiments.push_back({"e1", ExperimentState::kFailed, 9});
    u.experiments.push_back({"ghost", ExperimentState::kFailed, 9});
    EXPECT_EQ(this->store().Apply(u).code(), absl::StatusCode::kNotFound);
    expect_nothing_applied("unknown experiment");
  }
  {  // A metric for an unknown job.
    StateUpdate u;
    u.jobs = {changed};
    u.metrics.push_back({"e1-j0", 1, "loss", 1.0, 1});
    u.metrics.push_back({"ghost", 1, "loss", 1.0, 1});
    EXPECT_EQ(this->store().Apply(u).code(), absl::StatusCode::kNotFound);
    expect_nothing_applied("metric of unknown job");
  }
  {  // A job record that claims another experiment.
    JobRecord moved = changed;
    moved.experiment_id = "e2";
    StateUpdate u;
    u.jobs = {*j0, moved};
    EXPECT_EQ(this->store().Apply(u).code(), absl::StatusCode::kInvalidArgument);
    expect_nothing_applied("moved job");
  }
  {  // An invalid state enum.
    JobRecord bad = changed;
    bad.state = static_cast<JobState>(99);
    StateUpdate u;
    u.jobs = {bad};
    EXPECT_EQ(this->store().Apply(u).code(), absl::StatusCode::kInvalidArgument);
    expect_nothing_applied("bad state");
  }
  EXPECT_OK(this->store().Apply(StateUpdate{}));
}

// --- workers

TYPED_TEST(StoreTest, UpsertWorkerInsertsAndReplaces) {
  WorkerRecord w;
  w.id = "w2";
  w.host = "gpu-1";
  w.devices = {{"cuda", "A100", int64_t{80} << 30}, {"cpu", "epyc", 0}};
  w.job_kinds = {"train", "extract"};
  w.max_concurrent_jobs = 2;
  w.registered_at_ms = 10;
  w.last_seen_ms = 11;
  ASSERT_OK(this->store().UpsertWorker(w));
  WorkerRecord w1;
  w1.id = "w1";
  w1.host = "cpu-box";
  w1.alive = false;
  ASSERT_OK(this->store().UpsertWorker(w1));
  auto list = this->store().ListWorkers();
  ASSERT_OK(list);
  EXPECT_EQ(DescribeAll(*list), (std::vector<std::string>{Describe(w1), Describe(w)}));

  w.last_seen_ms = 99;
  w.job_kinds = {"train"};
  ASSERT_OK(this->store().UpsertWorker(w));
  list = this->store().ListWorkers();
  ASSERT_OK(list);
  EXPECT_EQ(DescribeAll(*list), (std::vector<std::string>{Describe(w1), Describe(w)}));

  WorkerRecord bad;
  EXPECT_EQ(this->store().UpsertWorker(bad).code(), absl::StatusCode::kInvalidArgument);
  bad.id = "w3";
  bad.max_concurrent_jobs = -1;
  EXPECT_EQ(this->store().UpsertWorker(bad).code(), absl::StatusCode::kInvalidArgument);
  list = this->store().ListWorkers();
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 2u);
}

// --- logs

TYPED_TEST(StoreTest, AppendLogsNumbersLinesPerJobAndGlobally) {
  this->Create(MakeExperiment("e1", 1, 2));
  this->Create(MakeExperiment("e2", 2, 1));
  auto a = this->store().AppendLogs("e1-j0", {"a1", "a2"}, 10);
  ASSERT_OK(a);
  auto b = this->store().AppendLogs("e1-j1", {"b1"}, 11);
  ASSERT_OK(b);
  auto c = this->store().AppendLogs("e2-j0", {"c1"}, 12);
  ASSERT_OK(c);
  auto a2 = this->store().AppendLogs("e1-j0", {"a3", ""}, 13);
  ASSERT_OK(a2);
  ASSERT_EQ(a->size(), 2u);
  ASSERT_EQ(a2->size(), 2u);
  EXPECT_EQ((*a)[0].seq, 1);
  EXPECT_EQ((*a)[1].seq, 2);
  EXPECT_EQ((*b)[0].seq, 1);
  EXPECT_EQ((*c)[0].seq, 1);
  EXPECT_EQ((*a2)[0].seq, 3);
  EXPECT_EQ((*a2)[1].seq, 4);
  EXPECT_EQ((*a2)[1].text, "");
  EXPECT_EQ((*a)[0].stage_id, "s0");
  EXPECT_EQ((*b)[0].stage_id, "s1");
  // Global ids strictly increase in append order.
  std::vector<int64_t> ids = {(*a)[0].id, (*a)[1].id, (*b)[0].id, (*c)[0].id, (*a2)[0].id, (*a2)[1].id};
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
  EXPECT_GT(ids[0], 0);

  // The returned records are what ReadLogs gives back.
  auto all = this->store().ReadLogs("e1", "", 0, 100);
  ASSERT_OK(all);
  std::vector<LogLineRecord> want = {(*a)[0], (*a)[1], (*b)[0], (*a2)[0], (*a2)[1]};
  EXPECT_EQ(DescribeAll(*all), DescribeAll(want));

  auto empty = this->store().AppendLogs("e1-j0", {}, 14);
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(this->store().AppendLogs("ghost", {"x"}, 1).status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreTest, ReadLogsFollowsACursorWithStageFilterAndLimit) {
  this->Create(MakeExperiment("e1", 1, 2));
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(this->store().AppendLogs("e1-j0", {"s0-" + std::to_string(i)}, i));
    ASSERT_OK(this->store().AppendLogs("e1-j1", {"s1-" + std::to_string(i)}, i));
  }
  // Page through everything two lines at a time.
  std::vector<std::string> texts;
  int64_t cursor = 0;
  for (int guard = 0; guard < 20; ++guard) {
    auto page = this->store().ReadLogs("e1", "", cursor, 2);
    ASSERT_OK(page);
    if (page->empty()) break;
    EXPECT_LE(page->size(), 2u);
    for (const LogLineRecord& l : *page) {
      EXPECT_GT(l.id, cursor);
      cursor = l.id;
      texts.push_back(l.text);
    }
  }
  EXPECT_EQ(texts.size(), 10u);
  EXPECT_EQ(texts.front(), "s0-0");
  EXPECT_EQ(texts.back(), "s1-4");

  auto stage = this->store().ReadLogs("e1", "s1", 0, 100);
  ASSERT_OK(stage);
  ASSERT_EQ(stage->size(), 5u);
  for (size_t i = 0; i < stage->size(); ++i) {
    EXPECT_EQ((*stage)[i].text, "s1-" + std::to_string(i));
    EXPECT_EQ((*stage)[i].seq, static_cast<int64_t>(i) + 1);
  }
  auto after = this->store().ReadLogs("e1", "s1", (*stage)[2].id, 100);
  ASSERT_OK(after);
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].text, "s1-3");

  auto none = this->store().ReadLogs("e1", "nostage", 0, 100);
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(this->store().ReadLogs("ghost", "", 0, 10).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().ReadLogs("e1", "", 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- artifacts

ArtifactRecord Artifact(const std::string& job, const std::string& name, char digit, int64_t size = 10) {
  ArtifactRecord a;
  a.job_id = job;
  a.name = name;
  a.size = size;
  a.sha256 = std::string(64, digit);
  a.created_at_ms = 7;
  return a;
}

TYPED_TEST(StoreTest, PutArtifactFillsExperimentAndStageAndReplacesPerJobAndName) {
  this->Create(MakeExperiment("e1", 1, 2));
  ASSERT_OK(this->store().PutArtifact(Artifact("e1-j0", "checkpoints/final.pt", '1', 100)));
  ASSERT_OK(this->store().PutArtifact(Artifact("e1-j0", "metrics.json", '2')));
  ASSERT_OK(this->store().PutArtifact(Artifact("e1-j1", "metrics.json", '3')));
  // Re-upload of the same name replaces the row.
  ASSERT_OK(this->store().PutArtifact(Artifact("e1-j0", "checkpoints/final.pt", '4', 200)));

  auto got = this->store().GetArtifact("e1", "s0", "checkpoints/final.pt");
  ASSERT_OK(got);
  ArtifactRecord want = Artifact("e1-j0", "checkpoints/final.pt", '4', 200);
  want.experiment_id = "e1";
  want.stage_id = "s0";
  EXPECT_EQ(Describe(*got), Describe(want));

  auto all = this->store().ListArtifacts("e1", "");
  ASSERT_OK(all);
  std::vector<std::string> names;
  for (const ArtifactRecord& a : *all) names.push_back(a.stage_id + ":" + a.name + ":" + a.sha256.substr(0, 1));
  EXPECT_EQ(names, (std::vector<std::string>{"s0:checkpoints/final.pt:4", "s0:metrics.json:2", "s1:metrics.json:3"}));

  auto s1 = this->store().ListArtifacts("e1", "s1");
  ASSERT_OK(s1);
  ASSERT_EQ(s1->size(), 1u);
  EXPECT_EQ((*s1)[0].job_id, "e1-j1");

  auto job = this->store().ListJobArtifacts("e1-j0");
  ASSERT_OK(job);
  ASSERT_EQ(job->size(), 2u);
  EXPECT_EQ((*job)[0].name, "checkpoints/final.pt");
  EXPECT_EQ((*job)[1].name, "metrics.json");
}

TYPED_TEST(StoreTest, ArtifactErrors) {
  this->Create(MakeExperiment("e1", 1, 1));
  EXPECT_EQ(this->store().PutArtifact(Artifact("ghost", "a", '1')).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().PutArtifact(Artifact("e1-j0", "../etc/passwd", '1')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(this->store().PutArtifact(Artifact("e1-j0", "/abs", '1')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(this->store().PutArtifact(Artifact("e1-j0", "a", 'X')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(this->store().PutArtifact(Artifact("e1-j0", "a", '1', -1)).code(), absl::StatusCode::kInvalidArgument);
  ArtifactRecord wrong_stage = Artifact("e1-j0", "a", '1');
  wrong_stage.stage_id = "s9";
  EXPECT_EQ(this->store().PutArtifact(wrong_stage).code(), absl::StatusCode::kInvalidArgument);
  ArtifactRecord wrong_exp = Artifact("e1-j0", "a", '1');
  wrong_exp.experiment_id = "e9";
  EXPECT_EQ(this->store().PutArtifact(wrong_exp).code(), absl::StatusCode::kInvalidArgument);
  auto all = this->store().ListArtifacts("e1", "");
  ASSERT_OK(all);
  EXPECT_TRUE(all->empty());

  EXPECT_EQ(this->store().GetArtifact("e1", "s0", "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().ListArtifacts("ghost", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store().ListJobArtifacts("ghost").status().code(), absl::StatusCode::kNotFound);
}

// --- metrics

TYPED_TEST(StoreTest, ListMetricsInStepOrderKeepsNaN) {
  this->Create(MakeExperiment("e1", 1, 1));
  StateUpdate u;
  u.metrics = {{"e1-j0", 20, "loss", 0.5, 3},
               {"e1-j0", 10, "loss", 0.9, 1},
               {"e1-j0", 10, "acc", 0.1, 2},
               {"e1-j0", 30, "loss", std::numeric_limits<double>::quiet_NaN(), 4}};
  ASSERT_OK(this->store().Apply(u));
  auto m = this->store().ListMetrics("e1-j0");
  ASSERT_OK(m);
  std::vector<MetricPoint> want = {u.metrics[1], u.metrics[2], u.metrics[0], u.metrics[3]};
  EXPECT_EQ(DescribeAll(*m), DescribeAll(want));
  EXPECT_EQ(this->store().ListMetrics("ghost").status().code(), absl::StatusCode::kNotFound);
}

// --- thread safety

TYPED_TEST(StoreTest, ReadersAndWritersOnManyThreads) {
  constexpr int kWriters = 2, kReaders = 3, kPerWriter = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        std::string id = "w" + std::to_string(w) + "-" + std::to_string(i);
        if (!this->store().CreateExperiments({MakeExperiment(id, i, 2)}).ok()) ++failures;
        if (!this->store().AppendLogs(id + "-j0", {"line"}, i).ok()) ++failures;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      for (int i = 0; i < 60; ++i) {
        ExperimentFilter f;
        f.limit = 10;
        if (!this->store().ListExperiments(f).ok()) ++failures;
        if (!this->store().ListActiveJobs().ok()) ++failures;
        auto j = this->store().GetJob("w0-0-j0");
        if (!j.ok() && j.status().code() != absl::StatusCode::kNotFound) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ExperimentFilter f;
  f.limit = 1000;
  auto all = this->store().ListExperiments(f);
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), static_cast<size_t>(kWriters * kPerWriter));
  auto active = this->store().ListActiveJobs();
  ASSERT_OK(active);
  EXPECT_EQ(active->size(), static_cast<size_t>(2 * kWriters * kPerWriter));
}

}  // namespace
}  // namespace topolab::server
