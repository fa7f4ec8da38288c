// Store: the scheduler's durable state behind one interface.
//
// The core (server/core) is the only writer; it calls the store on its own
// thread, but every method is thread-safe so the gRPC adapters may read
// (Get*/List*/Read*) from their threads. Implementations:
//   SqliteStore  - production: one SQLite file in WAL mode (sqlite_store.h)
//   MemoryStore  - tests: same semantics, no disk (memory_store.h)
//   FaultyStore  - tests: wraps another store and injects errors
//
// Every mutating method is one transaction: when it returns OK the change is
// durable (survives kill -9 of the process); when it returns an error
// nothing of it was applied.
//
// Domain structs only: no protobuf or gRPC types here.
#ifndef TOPOLAB_SERVER_STORE_STORE_H_
#define TOPOLAB_SERVER_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace topolab::server {

enum class JobState { kBlocked = 1, kQueued = 2, kRunning = 3, kSucceeded = 4, kFailed = 5, kCancelled = 6 };
enum class ExperimentState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };

// Lowercase names as stored in SQLite and shown by the CLI ("queued", ...).
const char* JobStateName(JobState s);
const char* ExperimentStateName(ExperimentState s);
std::optional<JobState> ParseJobState(const std::string& name);
std::optional<ExperimentState> ParseExperimentState(const std::string& name);
inline bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}
inline bool IsTerminal(ExperimentState s) {
  return s == ExperimentState::kSucceeded || s == ExperimentState::kFailed ||
         s == ExperimentState::kCancelled;
}

struct ResourceRequest {
  std::string device = "cpu";  // "cpu" | "cuda"
  int gpus = 0;
  double gpu_memory_gb = 0;
};

struct ExperimentRecord {
  std::string id;
  std::string name;
  std::string owner;
  int priority = 0;
  ExperimentState state = ExperimentState::kQueued;
  std::string config_yaml;   // verbatim
  std::string config_json;   // normalised
  std::string config_hash;   // sha256 hex of config_json
  int64_t created_at_ms = 0;
  int64_t finished_at_ms = 0;  // 0 while not terminal
};

struct JobRecord {
  std::string id;
  std::string experiment_id;
  std::string stage_id;
  std::string kind;
  JobState state = JobState::kBlocked;
  int priority = 0;                 // copied from the experiment
  std::string owner;                // copied from the experiment (fair share)
  ResourceRequest resources;
  std::vector<std::string> needs;   // stage ids within the same experiment
  std::string spec_json;            // normalised job spec (see proto/config)
  int attempt = 0;                  // 0 before the first lease; 1 for the first run
  int max_attempts = 3;
  int64_t fencing_token = 0;        // bumped by every claim
  std::string worker_id;            // holder of the current lease, if RUNNING
  int64_t lease_expires_at_ms = 0;  // if RUNNING
  double progress = 0;
  std::string message;              // failure / cancel reason
  std::map<std::string, double> metrics;  // newest value per metric name
  int64_t metrics_step = 0;
  int64_t created_at_ms = 0;
  int64_t queued_at_ms = 0;         // when it last became QUEUED (queue age)
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
};

struct DeviceRecord {
  std::string type;     // "cpu" | "cuda"
  std::string name;
  int64_t memory_bytes = 0;
};

struct WorkerRecord {
  std::string id;
  std::string host;
  std::vector<DeviceRecord> devices;
  std::vector<std::string> job_kinds;
  int max_concurrent_jobs = 1;
  int64_t registered_at_ms = 0;
  int64_t last_seen_ms = 0;
  bool alive = true;
};

struct LogLineRecord {
  int64_t id = 0;        // global, increasing: the cursor for streaming
  std::string job_id;
  std::string stage_id;
  int64_t seq = 0;       // increasing per job, from 1
  int64_t ts_ms = 0;
  std::string text;
};

struct ArtifactRecord {
  std::string experiment_id;
  std::string job_id;
  std::string stage_id;
  std::string name;      // validated relative path
  int64_t size = 0;
  std::string sha256;    // names the blob in the artifact store
  int64_t created_at_ms = 0;
};

struct MetricPoint {
  std::string job_id;
  int64_t step = 0;
  std::string name;
  double value = 0;
  int64_t ts_ms = 0;
};

struct NewExperiment {
  ExperimentRecord experiment;
  std::vector<JobRecord> jobs;
};

struct ExperimentFilter {
  std::string name;    // exact, when not empty
  std::string owner;   // exact, when not empty
  std::optional<ExperimentState> state;
  int limit = 50;
  // Page cursor: only experiments strictly older than this (created_at_ms, id)
  // pair, newest first. Empty id = from the newest.
  int64_t before_created_at_ms = 0;
  std::string before_id;
};

// Everything one state change touches, written in one transaction: full job
// rows (matched by id) and experiment state changes.
struct StateUpdate {
  std::vector<JobRecord> jobs;
  struct ExperimentChange {
    std::string id;
    ExperimentState state;
    int64_t finished_at_ms = 0;
  };
  std::vector<ExperimentChange> experiments;
  std::vector<MetricPoint> metrics;   // appended
};

class Store {
 public:
  virtual ~Store() = default;

  // --- experiments and jobs
  // Inserts experiments with their jobs, all in one transaction (group
  // commit). Returns AlreadyExists if any id exists; then nothing is written.
  // InvalidArgument (nothing written) for a malformed batch: an empty
  // experiment, job or stage id, an invalid state, an id twice in the batch,
  // a stage id twice in one experiment, or a job whose experiment_id is set
  // and names another experiment (an empty one is filled in). A job's
  // position in `jobs` is its stage order (ListJobs).
  virtual absl::Status CreateExperiments(const std::vector<NewExperiment>& batch) = 0;
  // Returns NotFound if absent.
  virtual absl::StatusOr<ExperimentRecord> GetExperiment(const std::string& id) = 0;
  // Newest first (created_at_ms desc, id desc), at most filter.limit rows.
  // InvalidArgument if filter.limit <= 0.
  virtual absl::StatusOr<std::vector<ExperimentRecord>> ListExperiments(
      const ExperimentFilter& filter) = 0;
  virtual absl::StatusOr<JobRecord> GetJob(const std::string& id) = 0;
  // Jobs of one experiment in stage (insertion) order. NotFound if the
  // experiment does not exist.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobs(const std::string& experiment_id) = 0;
  // All jobs in BLOCKED, QUEUED or RUNNING: what the core loads at start.
  // In job id order.
  virtual absl::StatusOr<std::vector<JobRecord>> ListActiveJobs() = 0;
  // Applies `update` atomically. NotFound if a job or experiment id is unknown
  // (also the job of a metric). Each job row is replaced whole by the given
  // record; its experiment_id and stage_id must match the stored row
  // (InvalidArgument otherwise, as for an invalid state value).
  virtual absl::Status Apply(const StateUpdate& update) = 0;
  // The lease claim: in one transaction (BEGIN IMMEDIATE; UPDATE ... WHERE
  // state='queued' RETURNING ...), moves the job to RUNNING for `worker_id`,
  // attempt+1, fencing_token+1, started_at/lease expiry set. Returns the new
  // row; FailedPrecondition if the job is not QUEUED; NotFound if absent.
  virtual absl::StatusOr<JobRecord> ClaimJob(const std::string& job_id,
                                             const std::string& worker_id, int64_t now_ms,
                                             int64_t lease_expires_at_ms) = 0;

  // --- workers
  // Inserts or replaces the row with worker.id. InvalidArgument if the id is
  // empty or max_concurrent_jobs < 0.
  virtual absl::Status UpsertWorker(const WorkerRecord& worker) = 0;
  // In id order.
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;

  // --- logs
  // Appends lines to a job's log with consecutive per-job seq numbers.
  // Returns the records written (with ids). NotFound if the job is unknown.
  virtual absl::StatusOr<std::vector<LogLineRecord>> AppendLogs(
      const std::string& job_id, const std::vector<std::string>& lines, int64_t ts_ms) = 0;
  // Lines of an experiment (optionally one stage) with id > after_id, in id
  // order, at most `limit`. An empty stage_id means every stage. NotFound if
  // the experiment is unknown; InvalidArgument if limit <= 0.
  virtual absl::StatusOr<std::vector<LogLineRecord>> ReadLogs(const std::string& experiment_id,
                                                              const std::string& stage_id,
                                                              int64_t after_id, int limit) = 0;

  // --- artifacts (the blob itself lives in the ArtifactStore)
  // Inserts or replaces the row for (job_id, name). experiment_id and
  // stage_id are taken from the job (if set they must match: InvalidArgument).
  // NotFound if the job is unknown; InvalidArgument for an invalid name
  // (ValidateArtifactName), a sha256 that is not 64 lowercase hex digits, or a
  // negative size.
  virtual absl::Status PutArtifact(const ArtifactRecord& artifact) = 0;
  // Sorted by (stage_id, name); an empty stage_id means every stage. NotFound
  // if the experiment is unknown.
  virtual absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(
      const std::string& experiment_id, const std::string& stage_id) = 0;
  // Sorted by name. NotFound if the job is unknown.
  virtual absl::StatusOr<std::vector<ArtifactRecord>> ListJobArtifacts(const std::string& job_id) = 0;
  // NotFound if absent.
  virtual absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& experiment_id,
                                                     const std::string& stage_id,
                                                     const std::string& name) = 0;

  // --- metrics history (latest values also live in JobRecord::metrics)
  // In step order (ties in insertion order). NotFound if the job is unknown.
  virtual absl::StatusOr<std::vector<MetricPoint>> ListMetrics(const std::string& job_id) = 0;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_STORE_STORE_H_
