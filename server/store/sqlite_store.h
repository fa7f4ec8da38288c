// SqliteStore: the production Store, one SQLite database file in WAL mode.
//
// Durability: every mutating method is one transaction. Connections run with
// journal_mode=WAL and synchronous=NORMAL: a commit appends to the WAL with a
// write(2) but without fsync, so once a method returns OK the change survives
// kill -9 (or any crash) of the process — the guarantee the scheduler makes
// for an acknowledged submit. It is not guaranteed to survive a power loss or
// kernel crash within the moments before the next WAL checkpoint (which does
// fsync); the database itself is never corrupted by one.
//
// Other settings: busy_timeout (another process holding the write lock makes a
// call wait, then Unavailable), foreign_keys=ON, prepared statements cached
// per connection, BEGIN IMMEDIATE for every write, ClaimJob as one
// `UPDATE jobs ... WHERE id=? AND state='queued' RETURNING ...`.
//
// Schema: migrations/NNNN_*.sql, embedded in the binary at build time, are
// applied at Open in number order, each in its own transaction that also sets
// PRAGMA user_version. A database whose user_version is newer than this binary
// knows is refused (FailedPrecondition), never modified.
//
// Thread-safety: every method may be called from any thread. Writes are
// serialised on one write connection behind a mutex; reads of a file database
// use a small pool of separate read connections (WAL lets them run beside the
// writer, each in its own snapshot). A ":memory:" database is private to one
// connection, so there all calls share the write connection.
//
// Errors (besides those of the Store contract): Unavailable when SQLite stays
// busy past busy_timeout, DataLoss for a corrupt database or row, Internal for
// other SQLite failures; messages name the database path.
#ifndef TOPOLAB_SERVER_STORE_SQLITE_STORE_H_
#define TOPOLAB_SERVER_STORE_SQLITE_STORE_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/store/migrations.h"
#include "server/store/store.h"

namespace topolab::server {

class SqliteStore : public Store {
 public:
  struct Options {
    // How long a call waits for another process's write lock (ms).
    int busy_timeout_ms = 5000;
    // At most this many read connections (file databases only).
    int max_readers = 4;
    // Schema migrations; empty = EmbeddedMigrations(). Tests pass their own
    // list to exercise versioning. REQUIRES: versions 1..N in order.
    std::vector<Migration> migrations;
  };

  // Opens (creating if needed) the database at `path` ("" or ":memory:" for a
  // private in-memory database) and migrates it to the newest schema.
  // FailedPrecondition if its user_version is newer than the newest migration;
  // the failing migration's error (with its file name) if one fails, leaving
  // the database at the previous version; FailedPrecondition if the file
  // cannot be opened; DataLoss if it is not a database.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           const Options& options);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // The newest schema version this binary knows (number of embedded migrations).
  static int LatestSchemaVersion();
  // PRAGMA user_version of the open database.
  absl::StatusOr<int> SchemaVersion();
  const std::string& path() const { return path_; }

  absl::Status CreateExperiments(const std::vector<NewExperiment>& batch) override;
  absl::StatusOr<ExperimentRecord> GetExperiment(const std::string& id) override;
  absl::StatusOr<std::vector<ExperimentRecord>> ListExperiments(const ExperimentFilter& filter) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(const std::string& experiment_id) override;
  absl::StatusOr<std::vector<JobRecord>> ListActiveJobs() override;
  absl::Status Apply(const StateUpdate& update) override;
  absl::StatusOr<JobRecord> ClaimJob(const std::string& job_id, const std::string& worker_id,
                                     int64_t now_ms, int64_t lease_expires_at_ms) override;
  absl::Status UpsertWorker(const WorkerRecord& worker) override;
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override;
  absl::StatusOr<std::vector<LogLineRecord>> AppendLogs(const std::string& job_id,
                                                        const std::vector<std::string>& lines,
                                                        int64_t ts_ms) override;
  absl::StatusOr<std::vector<LogLineRecord>> ReadLogs(const std::string& experiment_id,
                                                      const std::string& stage_id, int64_t after_id,
                                                      int limit) override;
  absl::Status PutArtifact(const ArtifactRecord& artifact) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(const std::string& experiment_id,
                                                            const std::string& stage_id) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(const std::string& job_id) override;
  absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& experiment_id,
                                             const std::string& stage_id,
                                             const std::string& name) override;
  absl::StatusOr<std::vector<MetricPoint>> ListMetrics(const std::string& job_id) override;

  class Connection;  // one sqlite3 handle + its statement cache (sqlite_store.cc)

 private:
  SqliteStore(std::string path, bool in_memory, Options options);

  absl::Status Migrate();
  // Runs fn(conn) inside BEGIN IMMEDIATE ... COMMIT on the write connection;
  // rolls back if fn or COMMIT fails.
  template <typename Fn>
  absl::Status Write(Fn&& fn);
  // Runs fn(conn) on a read connection, inside BEGIN ... COMMIT when
  // `snapshot` (several statements that must see one state).
  template <typename Fn>
  absl::Status Read(Fn&& fn, bool snapshot);
  absl::StatusOr<std::unique_ptr<Connection>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Connection> conn);

  const std::string path_;
  const bool in_memory_;
  const Options options_;

  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> free_readers_;  // guarded by pool_mu_
  int open_readers_ = 0;                                   // guarded by pool_mu_
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_STORE_SQLITE_STORE_H_
