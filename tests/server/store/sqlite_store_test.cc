// SqliteStore behaviour beyond the shared contract: a database file outlives
// the process (clean close and kill -9), migrations are versioned with
// PRAGMA user_version, and databases it cannot serve are refused untouched.
#include "server/store/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/store/migrations.h"
#include "tests/server/store/store_test_util.h"
#include "tests/test_util.h"

namespace topolab::server {
namespace {

namespace fs = std::filesystem;
using ::topolab::server::testing::Describe;
using ::topolab::server::testing::DescribeAll;
using ::topolab::server::testing::MakeExperiment;

class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "topolab-sqlite-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/topolab.db";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs one SQL statement on the file with a plain sqlite3 handle and
  // returns the first column of the first row ("" if none).
  std::string RawQuery(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
        out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      }
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  std::string dir_;
  std::string path_;
};

TEST(EmbeddedMigrationsTest, AreNumberedFromOne) {
  const std::vector<Migration>& m = EmbeddedMigrations();
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m[0].name, "0001_init.sql");
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i].version, static_cast<int>(i) + 1);
    EXPECT_NE(m[i].sql.find("CREATE"), std::string::npos) << m[i].name;
  }
  EXPECT_EQ(SqliteStore::LatestSchemaVersion(), static_cast<int>(m.size()));
}

TEST_F(SqliteFileTest, OpenAppliesAllMigrationsInWalMode) {
  auto store = SqliteStore::Open(path_);
  ASSERT_OK(store);
  auto v = (*store)->SchemaVersion();
  ASSERT_OK(v);
  EXPECT_EQ(*v, SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(RawQuery("PRAGMA user_version"), std::to_string(SqliteStore::LatestSchemaVersion()));
  EXPECT_EQ(RawQuery("PRAGMA journal_mode"), "wal");
  for (const char* table : {"experiments", "jobs", "workers", "logs", "artifacts", "metrics"}) {
    EXPECT_EQ(RawQuery(std::string("SELECT name FROM sqlite_master WHERE type='table' AND name='") + table + "'"),
              table);
  }
  // Opening again applies nothing (0001 would fail on existing tables).
  store->reset();
  auto again = SqliteStore::Open(path_);
  ASSERT_OK(again);
}

TEST_F(SqliteFileTest, InMemoryDatabaseIsMigratedToo) {
  auto store = SqliteStore::Open(":memory:");
  ASSERT_OK(store);
  auto v = (*store)->SchemaVersion();
  ASSERT_OK(v);
  EXPECT_EQ(*v, SqliteStore::LatestSchemaVersion());
}

TEST_F(SqliteFileTest, ReopenAfterCloseKeepsEverything) {
  NewExperiment e1 = MakeExperiment("e1", 100, 3);
  NewExperiment e2 = MakeExperiment("e2", 200, 1, "other", "bob");
  WorkerRecord w;
  w.id = "w1";
  w.host = "h";
  w.devices = {{"cuda", "H100", 80}};
  w.job_kinds = {"train"};
  ArtifactRecord a;
  a.job_id = "e1-j0";
  a.name = "checkpoints/final.pt";
  a.size = 3;
  a.sha256 = std::string(64, 'c');
  std::vector<ExperimentRecord> experiments;
  std::vector<JobRecord> jobs;
  std::vector<LogLineRecord> logs;
  {
    auto store = SqliteStore::Open(path_);
    ASSERT_OK(store);
    Store& s = **store;
    ASSERT_OK(s.CreateExperiments({e1, e2}));
    ASSERT_OK(s.ClaimJob("e1-j0", "w1", 150, 450));
    ASSERT_OK(s.UpsertWorker(w));
    ASSERT_OK(s.AppendLogs("e1-j0", {"one", "two"}, 160));
    ASSERT_OK(s.PutArtifact(a));
    StateUpdate u;
    u.metrics.push_back({"e1-j0", 5, "loss", 0.25, 170});
    u.experiments.push_back({"e2", ExperimentState::kCancelled, 180});
    ASSERT_OK(s.Apply(u));
    auto x = s.ListExperiments({});
    ASSERT_OK(x);
    experiments = *x;
    auto j = s.ListActiveJobs();
    ASSERT_OK(j);
    jobs = *j;
    auto l = s.ReadLogs("e1", "", 0, 100);
    ASSERT_OK(l);
    logs = *l;
  }
  auto store = SqliteStore::Open(path_);
  ASSERT_OK(store);
  Store& s = **store;
  auto x = s.ListExperiments({});
  ASSERT_OK(x);
  EXPECT_EQ(DescribeAll(*x), DescribeAll(experiments));
  auto j = s.ListActiveJobs();
  ASSERT_OK(j);
  EXPECT_EQ(DescribeAll(*j), DescribeAll(jobs));
  auto claimed = s.GetJob("e1-j0");
  ASSERT_OK(claimed);
  EXPECT_EQ(claimed->state, JobState::kRunning);
  EXPECT_EQ(claimed->fencing_token, 1);
  auto l = s.ReadLogs("e1", "", 0, 100);
  ASSERT_OK(l);
  EXPECT_EQ(DescribeAll(*l), DescribeAll(logs));
  // Numbering continues where it stopped.
  auto more = s.AppendLogs("e1-j0", {"three"}, 190);
  ASSERT_OK(more);
  EXPECT_EQ((*more)[0].seq, 3);
  EXPECT_GT((*more)[0].id, logs.back().id);
  auto workers = s.ListWorkers();
  ASSERT_OK(workers);
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ(Describe((*workers)[0]), Describe(w));
  auto art = s.GetArtifact("e1", "s0", "checkpoints/final.pt");
  ASSERT_OK(art);
  EXPECT_EQ(art->sha256, a.sha256);
  auto m = s.ListMetrics("e1-j0");
  ASSERT_OK(m);
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].value, 0.25);
}

TEST_F(SqliteFileTest, AcknowledgedWritesSurviveKillDashNine) {
  // The child writes, then dies by SIGKILL without closing anything: no
  // destructor, no checkpoint. Everything it was told is OK must be there.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto store = SqliteStore::Open(path_);
    if (!store.ok()) ::_exit(2);
    for (int i = 0; i < 20; ++i) {
      if (!(*store)->CreateExperiments({MakeExperiment("k" + std::to_string(i), i, 2)}).ok()) ::_exit(3);
    }
    if (!(*store)->ClaimJob("k0-j0", "w", 1, 2).ok()) ::_exit(4);
    if (!(*store)->AppendLogs("k0-j0", {"last words"}, 3).ok()) ::_exit(5);
    ::kill(::getpid(), SIGKILL);
    ::_exit(6);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_TRUE(fs::exists(path_ + "-wal"));  // not checkpointed: recovery reads the WAL

  auto store = SqliteStore::Open(path_);
  ASSERT_OK(store);
  ExperimentFilter f;
  f.limit = 100;
  auto x = (*store)->ListExperiments(f);
  ASSERT_OK(x);
  EXPECT_EQ(x->size(), 20u);
  auto j = (*store)->GetJob("k0-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->state, JobState::kRunning);
  EXPECT_EQ(j->fencing_token, 1);
  auto l = (*store)->ReadLogs("k0", "", 0, 10);
  ASSERT_OK(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].text, "last words");
}

Migration M(int version, const std::string& name, const std::string& sql) { return {version, name, sql}; }

TEST_F(SqliteFileTest, MigrationsApplyInOrderAndOnlyOnce) {
  SqliteStore::Options o1;
  o1.migrations = {M(1, "0001_a.sql", "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);")};
  {
    auto s = SqliteStore::Open(path_, o1);
    ASSERT_OK(s);
    auto v = (*s)->SchemaVersion();
    ASSERT_OK(v);
    EXPECT_EQ(*v, 1);
  }
  SqliteStore::Options o2 = o1;
  o2.migrations.push_back(M(2, "0002_b.sql", "CREATE TABLE b (y TEXT); INSERT INTO a VALUES (2);"));
  o2.migrations.push_back(M(3, "0003_c.sql", "ALTER TABLE b ADD COLUMN z INTEGER DEFAULT 7;"));
  {
    auto s = SqliteStore::Open(path_, o2);
    ASSERT_OK(s);
    auto v = (*s)->SchemaVersion();
    ASSERT_OK(v);
    EXPECT_EQ(*v, 3);
  }
  // 0001 ran once (one row 1), 0002 once (one row 2), 0003 saw 0002's table.
  EXPECT_EQ(RawQuery("SELECT group_concat(x) FROM (SELECT x FROM a ORDER BY x)"), "1,2");
  EXPECT_EQ(RawQuery("SELECT COUNT(*) FROM pragma_table_info('b') WHERE name='z'"), "1");
  EXPECT_EQ(RawQuery("PRAGMA user_version"), "3");
}

TEST_F(SqliteFileTest, FailingMigrationRollsBackAndKeepsThePreviousVersion) {
  SqliteStore::Options o;
  o.migrations = {M(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"),
                  M(2, "0002_broken.sql", "CREATE TABLE half (y INTEGER); THIS IS NOT SQL;")};
  auto s = SqliteStore::Open(path_, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("0002_broken.sql"), absl::string_view::npos) << s.status();
  EXPECT_EQ(RawQuery("PRAGMA user_version"), "1");
  EXPECT_EQ(RawQuery("SELECT COUNT(*) FROM sqlite_master WHERE name='half'"), "0");
  EXPECT_EQ(RawQuery("SELECT COUNT(*) FROM sqlite_master WHERE name='a'"), "1");
}

TEST_F(SqliteFileTest, RefusesADatabaseFromANewerBinary) {
  {
    auto s = SqliteStore::Open(path_);
    ASSERT_OK(s);
  }
  const int newer = SqliteStore::LatestSchemaVersion() + 1;
  RawQuery("PRAGMA user_version = " + std::to_string(newer));
  auto s = SqliteStore::Open(path_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find(path_), absl::string_view::npos) << s.status();
  // Untouched.
  EXPECT_EQ(RawQuery("PRAGMA user_version"), std::to_string(newer));
}

TEST_F(SqliteFileTest, RefusesAFileThatIsNotADatabase) {
  { std::ofstream(path_) << std::string(4096, 'x'); }
  auto s = SqliteStore::Open(path_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
}

TEST_F(SqliteFileTest, MissingFolderIsAnOpenError) {
  auto s = SqliteStore::Open(dir_ + "/no/such/folder/db");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
}

TEST_F(SqliteFileTest, WritesFromOneStoreAreSeenByAnotherOnTheSameFile) {
  // Two schedulers must not share a file, but a second reader (e.g. a
  // support tool) sees committed state.
  auto a = SqliteStore::Open(path_);
  ASSERT_OK(a);
  auto b = SqliteStore::Open(path_);
  ASSERT_OK(b);
  ASSERT_OK((*a)->CreateExperiments({MakeExperiment("e1", 1)}));
  auto x = (*b)->GetExperiment("e1");
  ASSERT_OK(x);
  ASSERT_OK((*b)->ClaimJob("e1-j0", "w", 1, 2));
  auto j = (*a)->GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->state, JobState::kRunning);
  EXPECT_EQ((*a)->ClaimJob("e1-j0", "w2", 1, 2).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace topolab::server
