// MemoryStore: a Store kept in process memory, for tests.
//
// Same semantics and the same error codes as SqliteStore (the shared store
// test fixture runs every behaviour against both), but nothing survives the
// object. Thread-safe: one mutex guards everything.
#ifndef TOPOLAB_SERVER_STORE_MEMORY_STORE_H_
#define TOPOLAB_SERVER_STORE_MEMORY_STORE_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/store/store.h"

namespace topolab::server {

class MemoryStore : public Store {
 public:
  MemoryStore() = default;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

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
  struct StoredLog {
    std::string experiment_id;
    LogLineRecord line;
  };

  std::mutex mu_;  // guards every member below
  std::unordered_map<std::string, ExperimentRecord> experiments_;
  // (created_at_ms, id): ListExperiments walks this backwards (newest first).
  std::set<std::pair<int64_t, std::string>> experiment_order_;
  std::unordered_map<std::string, JobRecord> jobs_;
  // experiment id -> job ids in stage order.
  std::unordered_map<std::string, std::vector<std::string>> experiment_jobs_;
  std::map<std::string, WorkerRecord> workers_;
  std::vector<StoredLog> logs_;  // in id order; id = index + 1
  std::unordered_map<std::string, int64_t> log_seq_;  // job id -> last seq
  // (job id, name) -> row.
  std::map<std::pair<std::string, std::string>, ArtifactRecord> artifacts_;
  std::unordered_map<std::string, std::vector<MetricPoint>> metrics_;
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_STORE_MEMORY_STORE_H_
