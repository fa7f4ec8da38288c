// FaultyStore: every method goes through Run(), which decides whether a fault
// fires and whether the base store is called.
#include "server/store/faulty_store.h"

#include <utility>

namespace topolab::server {

void FaultyStore::FailNext(int n, absl::Status status, const std::string& method, Mode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < n; ++i) faults_.push_back({status, method, false, mode});
}

void FaultyStore::FailNextWrites(int n, absl::Status status, Mode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < n; ++i) faults_.push_back({status, "", true, mode});
}

void FaultyStore::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
}

int FaultyStore::pending_faults() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(faults_.size());
}

int64_t FaultyStore::calls(const std::string& method) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

FaultyStore::Decision FaultyStore::Take(const char* method, bool is_write) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_[method];
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (!it->method.empty() && it->method != method) continue;
    if (it->writes_only && !is_write) continue;
    Decision d{it->status, it->mode};
    faults_.erase(it);
    return d;
  }
  return {};
}

template <typename T, typename Call>
T FaultyStore::Run(const char* method, bool is_write, Call&& call) {
  Decision d = Take(method, is_write);
  if (d.status.ok()) return call();
  if (d.mode == Mode::kAfterCall) {
    T ignored = call();
    (void)ignored;
  }
  return d.status;
}

absl::Status FaultyStore::CreateExperiments(const std::vector<NewExperiment>& batch) {
  return Run<absl::Status>("CreateExperiments", true, [&] { return base_.CreateExperiments(batch); });
}
absl::StatusOr<ExperimentRecord> FaultyStore::GetExperiment(const std::string& id) {
  return Run<absl::StatusOr<ExperimentRecord>>("GetExperiment", false, [&] { return base_.GetExperiment(id); });
}
absl::StatusOr<std::vector<ExperimentRecord>> FaultyStore::ListExperiments(const ExperimentFilter& filter) {
  return Run<absl::StatusOr<std::vector<ExperimentRecord>>>("ListExperiments", false,
                                                            [&] { return base_.ListExperiments(filter); });
}
absl::StatusOr<JobRecord> FaultyStore::GetJob(const std::string& id) {
  return Run<absl::StatusOr<JobRecord>>("GetJob", false, [&] { return base_.GetJob(id); });
}
absl::StatusOr<std::vector<JobRecord>> FaultyStore::ListJobs(const std::string& experiment_id) {
  return Run<absl::StatusOr<std::vector<JobRecord>>>("ListJobs", false,
                                                     [&] { return base_.ListJobs(experiment_id); });
}
absl::StatusOr<std::vector<JobRecord>> FaultyStore::ListActiveJobs() {
  return Run<absl::StatusOr<std::vector<JobRecord>>>("ListActiveJobs", false,
                                                     [&] { return base_.ListActiveJobs(); });
}
absl::Status FaultyStore::Apply(const StateUpdate& update) {
  return Run<absl::Status>("Apply", true, [&] { return base_.Apply(update); });
}
absl::StatusOr<JobRecord> FaultyStore::ClaimJob(const std::string& job_id, const std::string& worker_id,
                                                int64_t now_ms, int64_t lease_expires_at_ms) {
  return Run<absl::StatusOr<JobRecord>>("ClaimJob", true, [&] {
    return base_.ClaimJob(job_id, worker_id, now_ms, lease_expires_at_ms);
  });
}
absl::Status FaultyStore::UpsertWorker(const WorkerRecord& worker) {
  return Run<absl::Status>("UpsertWorker", true, [&] { return base_.UpsertWorker(worker); });
}
absl::StatusOr<std::vector<WorkerRecord>> FaultyStore::ListWorkers() {
  return Run<absl::StatusOr<std::vector<WorkerRecord>>>("ListWorkers", false, [&] { return base_.ListWorkers(); });
}
absl::StatusOr<std::vector<LogLineRecord>> FaultyStore::AppendLogs(const std::string& job_id,
                                                                   const std::vector<std::string>& lines,
                                                                   int64_t ts_ms) {
  return Run<absl::StatusOr<std::vector<LogLineRecord>>>("AppendLogs", true,
                                                         [&] { return base_.AppendLogs(job_id, lines, ts_ms); });
}
absl::StatusOr<std::vector<LogLineRecord>> FaultyStore::ReadLogs(const std::string& experiment_id,
                                                                 const std::string& stage_id,
                                                                 int64_t after_id, int limit) {
  return Run<absl::StatusOr<std::vector<LogLineRecord>>>(
      "ReadLogs", false, [&] { return base_.ReadLogs(experiment_id, stage_id, after_id, limit); });
}
absl::Status FaultyStore::PutArtifact(const ArtifactRecord& artifact) {
  return Run<absl::Status>("PutArtifact", true, [&] { return base_.PutArtifact(artifact); });
}
absl::StatusOr<std::vector<ArtifactRecord>> FaultyStore::ListArtifacts(const std::string& experiment_id,
                                                                       const std::string& stage_id) {
  return Run<absl::StatusOr<std::vector<ArtifactRecord>>>(
      "ListArtifacts", false, [&] { return base_.ListArtifacts(experiment_id, stage_id); });
}
absl::StatusOr<std::vector<ArtifactRecord>> FaultyStore::ListJobArtifacts(const std::string& job_id) {
  return Run<absl::StatusOr<std::vector<ArtifactRecord>>>("ListJobArtifacts", false,
                                                          [&] { return base_.ListJobArtifacts(job_id); });
}
absl::StatusOr<ArtifactRecord> FaultyStore::GetArtifact(const std::string& experiment_id,
                                                        const std::string& stage_id, const std::string& name) {
  return Run<absl::StatusOr<ArtifactRecord>>("GetArtifact", false,
                                             [&] { return base_.GetArtifact(experiment_id, stage_id, name); });
}
absl::StatusOr<std::vector<MetricPoint>> FaultyStore::ListMetrics(const std::string& job_id) {
  return Run<absl::StatusOr<std::vector<MetricPoint>>>("ListMetrics", false,
                                                       [&] { return base_.ListMetrics(job_id); });
}

}  // namespace topolab::server
