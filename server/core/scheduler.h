// Scheduler: the heart of topolab-scheduler, with no gRPC and no SQL in it.
//
// It owns the in-memory view of every active experiment (one with a job that
// is not finished) and implements the job state machine of ARCHITECTURE.md:
//
//   BLOCKED --(all needs SUCCEEDED)--> QUEUED --(claimed)--> RUNNING
//   RUNNING --(CompleteJob)--> SUCCEEDED | FAILED | CANCELLED
//   RUNNING --(lease expired, attempt < max_attempts)--> QUEUED (attempt+1 on claim)
//   RUNNING --(lease expired, attempt == max_attempts)--> FAILED "lease expired N times"
//   BLOCKED --(a need FAILED or CANCELLED)--> CANCELLED "need 'x' failed"
//
// Queue order: priority (desc), then fair share between owners (the owner
// with the fewest RUNNING jobs first), then age (queued_at_ms), then id.
// A job is leased only to a worker whose capabilities match (job kind, device
// type, GPU count and memory) and that has a free slot.
//
// Durability: every change is written to the Store first and only then
// applied in memory; when a store write fails the method returns that error
// and the in-memory state is unchanged. Submits are group-committed: Submit()
// only enqueues, FlushSubmits() writes every pending experiment with one
// Store::CreateExperiments call and then answers each callback (an
// acknowledged submit is durable). Recover() rebuilds the memory from the
// store after a restart; leases found RUNNING get a fresh TTL from the
// restart, so those of workers that died meanwhile expire and requeue.
//
// Threading: NOT thread-safe. Every method must be called on one thread (the
// core thread of CoreLoop; in tests the test thread). Callbacks are invoked
// on that thread, either before the method returns or from a later call
// (FlushSubmits, Tick, or any call that makes a job QUEUED).
#ifndef TOPOLAB_SERVER_CORE_SCHEDULER_H_
#define TOPOLAB_SERVER_CORE_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/clock.h"
#include "server/core/event_hub.h"
#include "server/store/store.h"

namespace spdlog {
class logger;
}

namespace topolab::server {

// Tunables of the core, with their defaults. main.cc fills them from flags.
struct SchedulerOptions {
  // A lease not renewed by a heartbeat for this long expires.
  int64_t lease_ttl_ms = 15000;
  // How often workers are asked to heartbeat (RegisterWorker's answer).
  int64_t heartbeat_interval_ms = 2000;
  // A worker not heard from for this many heartbeat intervals is dead.
  int dead_after_missed_heartbeats = 3;
  // Longest long poll a LeaseJob may park for.
  int64_t max_lease_wait_ms = 60000;
  // Seed for experiment and worker ids; 0 = from std::random_device.
  uint64_t id_seed = 0;
};

struct SubmitResult {
  std::string experiment_id;
  std::vector<std::string> job_ids;  // in stage order
};

// What a worker receives with a lease (the domain form of proto Lease).
struct LeaseGrant {
  JobRecord job;                              // RUNNING, with attempt and fencing token
  std::vector<ArtifactRecord> inputs;         // artifacts of the stages it needs
  std::vector<ArtifactRecord> own_artifacts;  // its own, from earlier attempts
  int64_t lease_ttl_ms = 0;
};

struct WorkerView {
  WorkerRecord record;
  std::vector<std::string> running_job_ids;
};

struct HeartbeatReport {
  std::string worker_id;  // optional: when set it must hold the lease
  std::string job_id;
  int64_t fencing_token = 0;
  double progress = 0;
  int64_t step = 0;
  std::map<std::string, double> metrics;
};

struct CompletionReport {
  std::string job_id;
  int64_t fencing_token = 0;
  bool succeeded = false;
  std::string message;
  std::map<std::string, double> metrics;  // final values, merged into the newest metrics
};

class Scheduler {
 public:
  using SubmitCallback = std::function<void(absl::StatusOr<SubmitResult>)>;
  // nullopt = no job for this worker before the poll's deadline.
  using LeaseCallback = std::function<void(absl::StatusOr<std::optional<LeaseGrant>>)>;

  // `store`, `clock` and `hub` must outlive the scheduler. `logger` may be
  // null (then nothing is logged).
  Scheduler(Store& store, const Clock& clock, EventHub& hub, const SchedulerOptions& options,
            std::shared_ptr<spdlog::logger> logger = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Loads workers and every active job (and the experiments they belong to)
  // from the store. REQUIRES: called once, before anything else.
  absl::Status Recover();

  // ---------------------------------------------------------------- clients
  // Validates `experiment` (stage ids unique and non-empty, needs known and
  // acyclic, max_attempts >= 1), assigns the experiment and job ids and the
  // timestamps, and queues it for the next FlushSubmits(). Jobs without needs
  // start QUEUED, the others BLOCKED. Ids and created_at given by the caller
  // are replaced. An invalid experiment gets InvalidArgument at once.
  void Submit(NewExperiment experiment, SubmitCallback done);
  // Writes all pending submits in one store transaction, then answers them
  // (each with the store's error if it failed) and offers the new jobs to
  // waiting workers.
  void FlushSubmits();
  size_t pending_submits() const { return pending_.size(); }

  // Cancels an experiment: BLOCKED and QUEUED jobs become CANCELLED at once,
  // RUNNING jobs are told to stop in their next heartbeat and become
  // CANCELLED when their worker completes them or their lease expires. The
  // experiment's state is CANCELLED from now on. Cancelling a cancelled
  // experiment returns it unchanged. Returns NotFound if unknown,
  // FailedPrecondition if it already succeeded or failed.
  absl::StatusOr<ExperimentRecord> CancelExperiment(const std::string& experiment_id);

  // ---------------------------------------------------------------- workers
  // Registers a worker (a new id when worker.id is empty or unknown ids are
  // kept as given) and marks it alive. Returns InvalidArgument for no job
  // kinds or a negative max_concurrent_jobs (0 means 1).
  absl::StatusOr<WorkerRecord> RegisterWorker(WorkerRecord worker);

  // Long poll. Answers at once with the best matching QUEUED job if the
  // worker has a free slot; otherwise parks the request until a matching job
  // becomes QUEUED (answered then) or until now + wait_ms (answered with
  // nullopt by Tick()). `is_cancelled`, if given, is checked before a parked
  // request is given a job (the caller went away: it is dropped instead).
  // NotFound if the worker is not registered.
  void LeaseJob(const std::string& worker_id, int64_t wait_ms, LeaseCallback done,
                std::function<bool()> is_cancelled = nullptr);

  // Renews the lease and records progress and metrics (metric points are
  // persisted). Returns whether the job should stop (it was cancelled).
  // FailedPrecondition if the token is not the job's current one or the job
  // is not RUNNING (nothing changes); NotFound if the job does not exist.
  absl::StatusOr<bool> Heartbeat(const HeartbeatReport& report);

  // Appends log lines of a leased job. Same token rules as Heartbeat.
  absl::StatusOr<std::vector<LogLineRecord>> AppendLogs(const std::string& job_id,
                                                        int64_t fencing_token,
                                                        const std::vector<std::string>& lines);

  // Checks that (job_id, fencing_token) is a current lease and returns the
  // job. Used before an upload accepts data.
  absl::StatusOr<JobRecord> CheckLease(const std::string& job_id, int64_t fencing_token) const;

  // Records an artifact whose blob is already committed to the artifact
  // store (the row is written after the blob). Same token rules as Heartbeat.
  absl::StatusOr<ArtifactRecord> RecordArtifact(const std::string& job_id, int64_t fencing_token,
                                                const std::string& name, int64_t size,
                                                const std::string& sha256);

  // Finishes a leased job: SUCCEEDED or FAILED (CANCELLED if the job was
  // cancelled meanwhile). Success releases BLOCKED dependants whose needs all
  // succeeded; failure cancels every job that depends on it, transitively.
  // Same token rules as Heartbeat.
  absl::Status CompleteJob(const CompletionReport& report);

  // Periodic sweep (CoreLoop calls it every few tens of ms): requeues or
  // fails expired leases, marks silent workers dead, answers long polls whose
  // deadline passed. Store errors are logged and retried on the next Tick.
  void Tick();

  // Answers every parked long poll with "no job" (used at shutdown).
  void ReleaseParkedLeases();

  std::vector<WorkerView> ListWorkers() const;

  // Introspection for tests: the in-memory job (std::nullopt once its
  // experiment is finished and dropped from memory).
  std::optional<JobRecord> ActiveJobForTest(const std::string& job_id) const;
  size_t parked_leases() const { return waiters_.size(); }
  bool CancelRequestedForTest(const std::string& job_id) const;

 private:
  struct ActiveJob {
    JobRecord rec;
    bool cancel_requested = false;  // memory only; rebuilt from the experiment's state
  };
  struct ActiveExperiment {
    ExperimentRecord rec;
    std::vector<std::string> job_ids;  // stage order
  };
  struct WorkerState {
    WorkerRecord rec;
    std::set<std::string> running;
    int64_t last_seen_ms = 0;  // in-memory liveness clock
  };
  struct Waiter {
    std::string worker_id;
    int64_t deadline_ms = 0;
    LeaseCallback done;
    std::function<bool()> is_cancelled;
  };
  struct PendingSubmit {
    NewExperiment experiment;
    SubmitCallback done;
  };
  // (−priority, queued_at_ms, id): order within one owner's queue.
  using QueueKey = std::tuple<int, int64_t, std::string>;

  // A set of changes computed on copies, written to the store in one Apply,
  // then installed in memory.
  struct Txn {
    std::map<std::string, JobRecord> jobs;
    std::map<std::string, bool> cancel_flags;
    std::vector<MetricPoint> metrics;
    std::set<std::string> experiments;  // touched
    std::map<std::string, ExperimentState> forced_state;  // user cancel
  };

  const JobRecord& View(const Txn& txn, const std::string& job_id) const;
  JobRecord& Mutable(Txn& txn, const std::string& job_id);
  absl::Status Commit(Txn& txn);
  void InstallJob(const JobRecord& rec);
  void EraseExperiment(const std::string& experiment_id);
  void DeriveExperimentState(const Txn& txn, const ActiveExperiment& exp, ExperimentState* state,
                             int64_t* finished_at_ms) const;
  void ReleaseDependants(Txn& txn, const std::string& experiment_id);
  void CancelDependants(Txn& txn, const std::string& experiment_id, const std::string& stage_id,
                        const std::string& why);

  absl::StatusOr<ActiveJob*> FindLease(const std::string& job_id, int64_t fencing_token);
  // Tries to hand `worker_id` a job. nullopt = nothing matching.
  absl::StatusOr<std::optional<LeaseGrant>> TryLease(const std::string& worker_id);
  std::optional<std::string> BestJobFor(const WorkerState& worker) const;
  bool Matches(const WorkerState& worker, const JobRecord& job) const;
  void DispatchWaiters();
  void ExpireLeases(int64_t now);
  void CheckWorkers(int64_t now);
  void TouchWorker(const std::string& worker_id, int64_t now);
  std::string NewId(const char* prefix);

  Store& store_;
  const Clock& clock_;
  EventHub& hub_;
  SchedulerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::mt19937_64 rng_;

  std::unordered_map<std::string, ActiveJob> jobs_;
  std::unordered_map<std::string, ActiveExperiment> experiments_;
  std::unordered_map<std::string, WorkerState> workers_;
  std::map<std::string, std::set<QueueKey>> queues_;       // owner -> queued jobs
  std::unordered_map<std::string, int> running_by_owner_;
  std::set<std::pair<int64_t, std::string>> lease_expiry_;  // (expires_at, job id)
  std::list<Waiter> waiters_;
  std::vector<PendingSubmit> pending_;
  bool dispatching_ = false;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_CORE_SCHEDULER_H_
