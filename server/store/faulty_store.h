// FaultyStore: wraps another Store and makes chosen calls fail, for testing
// how the core and the services handle storage errors (as leveldb's
// FaultInjectionTestEnv wraps an Env).
//
//   MemoryStore base;
//   FaultyStore store(base);
//   store.FailNext(1, absl::UnavailableError("disk busy"));   // next call of any method
//   store.FailNext(2, absl::InternalError("io"), "ClaimJob"); // next two ClaimJob calls
//   store.FailNext(1, absl::InternalError("lost ack"), "Apply", FaultyStore::Mode::kAfterCall);
//
// Mode::kBeforeCall (default) fails without touching the base store: the
// call had no effect, as the Store contract promises for errors.
// Mode::kAfterCall runs the base call and then reports the error anyway: the
// change happened but the caller was told it failed (a lost acknowledgement).
//
// Faults are consumed in the order they were added; a fault matches a call
// if its method is empty or equals the method's name ("CreateExperiments",
// "GetJob", ...). Methods that read and methods that write are treated alike;
// use FailNextWrites for mutating methods only. Thread-safe.
#ifndef TOPOLAB_SERVER_STORE_FAULTY_STORE_H_
#define TOPOLAB_SERVER_STORE_FAULTY_STORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "server/store/store.h"

namespace topolab::server {

class FaultyStore : public Store {
 public:
  enum class Mode { kBeforeCall, kAfterCall };

  // `base` must outlive this object.
  explicit FaultyStore(Store& base) : base_(base) {}

  // The next `n` calls of `method` (any method if empty) return `status`.
  // REQUIRES: !status.ok().
  void FailNext(int n, absl::Status status, const std::string& method = "",
                Mode mode = Mode::kBeforeCall);
  // The next `n` calls of mutating methods (CreateExperiments, Apply,
  // ClaimJob, UpsertWorker, AppendLogs, PutArtifact) return `status`.
  void FailNextWrites(int n, absl::Status status, Mode mode = Mode::kBeforeCall);
  // Removes every pending fault.
  void ClearFaults();
  // Faults not yet consumed.
  int pending_faults() const;
  // How many times `method` was called (including failed calls).
  int64_t calls(const std::string& method) const;

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

 private:
  struct Fault {
    absl::Status status;
    std::string method;  // empty = any
    bool writes_only = false;
    Mode mode = Mode::kBeforeCall;
  };
  struct Decision {
    absl::Status status;  // OK = no fault
    Mode mode = Mode::kBeforeCall;
  };

  // Counts the call and takes the first matching fault, if any.
  Decision Take(const char* method, bool is_write);

  template <typename T, typename Call>
  T Run(const char* method, bool is_write, Call&& call);

  Store& base_;
  mutable std::mutex mu_;  // guards faults_ and calls_
  std::deque<Fault> faults_;
  std::map<std::string, int64_t> calls_;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_STORE_FAULTY_STORE_H_
