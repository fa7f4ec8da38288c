// MemoryStore: every check happens before the first change, so a failing call
// leaves nothing behind, exactly like a rolled-back SQLite transaction.
#include "server/store/memory_store.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/store_checks.h"

namespace topolab::server {
namespace {

absl::Status JobNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
}
absl::Status ExperimentNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("experiment ", id, " not found"));
}

}  // namespace

absl::Status MemoryStore::CreateExperiments(const std::vector<NewExperiment>& batch) {
  if (absl::Status s = store_internal::CheckNewExperiments(batch); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  for (const NewExperiment& e : batch) {
    if (experiments_.count(e.experiment.id) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("experiment ", e.experiment.id, " already exists"));
    }
    for (const JobRecord& j : e.jobs) {
      if (jobs_.count(j.id) > 0) return absl::AlreadyExistsError(absl::StrCat("job ", j.id, " already exists"));
    }
  }
  for (const NewExperiment& e : batch) {
    experiments_[e.experiment.id] = e.experiment;
    experiment_order_.emplace(e.experiment.created_at_ms, e.experiment.id);
    std::vector<std::string>& ids = experiment_jobs_[e.experiment.id];
    for (const JobRecord& j : e.jobs) {
      JobRecord& stored = jobs_[j.id] = j;
      stored.experiment_id = e.experiment.id;
      ids.push_back(j.id);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ExperimentRecord> MemoryStore::GetExperiment(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = experiments_.find(id);
  if (it == experiments_.end()) return ExperimentNotFound(id);
  return it->second;
}

absl::StatusOr<std::vector<ExperimentRecord>> MemoryStore::ListExperiments(
    const ExperimentFilter& filter) {
  if (filter.limit <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("list limit must be positive, got ", filter.limit));
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ExperimentRecord> out;
  auto it = experiment_order_.rbegin();
  if (!filter.before_id.empty()) {
    // First key strictly less than the cursor, walking backwards.
    auto bound = experiment_order_.lower_bound({filter.before_created_at_ms, filter.before_id});
    it = std::make_reverse_iterator(bound);
  }
  for (; it != experiment_order_.rend() && static_cast<int>(out.size()) < filter.limit; ++it) {
    const ExperimentRecord& x = experiments_.at(it->second);
    if (!filter.name.empty() && x.name != filter.name) continue;
    if (!filter.owner.empty() && x.owner != filter.owner) continue;
    if (filter.state.has_value() && x.state != *filter.state) continue;
    out.push_back(x);
  }
  return out;
}

absl::StatusOr<JobRecord> MemoryStore::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return JobNotFound(id);
  return it->second;
}

absl::StatusOr<std::vector<JobRecord>> MemoryStore::ListJobs(const std::string& experiment_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (experiments_.count(experiment_id) == 0) return ExperimentNotFound(experiment_id);
  std::vector<JobRecord> out;
  auto it = experiment_jobs_.find(experiment_id);
  if (it != experiment_jobs_.end()) {
    for (const std::string& id : it->second) out.push_back(jobs_.at(id));
  }
  return out;
}

absl::StatusOr<std::vector<JobRecord>> MemoryStore::ListActiveJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<JobRecord> out;
  for (const auto& [id, job] : jobs_) {
    if (!IsTerminal(job.state)) out.push_back(job);
  }
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& b) { return a.id < b.id; });
  return out;
}

absl::Status MemoryStore::Apply(const StateUpdate& update) {
  if (absl::Status s = store_internal::CheckStateUpdate(update); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  for (const JobRecord& j : update.jobs) {
    auto it = jobs_.find(j.id);
    if (it == jobs_.end()) return JobNotFound(j.id);
    if (it->second.experiment_id != j.experiment_id || it->second.stage_id != j.stage_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job ", j.id, ": update names experiment ", j.experiment_id, " stage ", j.stage_id,
          " but the stored job belongs to experiment ", it->second.experiment_id, " stage ",
          it->second.stage_id));
    }
  }
  for (const StateUpdate::ExperimentChange& c : update.experiments) {
    if (experiments_.count(c.id) == 0) return ExperimentNotFound(c.id);
  }
  for (const MetricPoint& m : update.metrics) {
    if (jobs_.count(m.job_id) == 0) return JobNotFound(m.job_id);
  }
  for (const JobRecord& j : update.jobs) jobs_[j.id] = j;
  for (const StateUpdate::ExperimentChange& c : update.experiments) {
    ExperimentRecord& x = experiments_[c.id];
    x.state = c.state;
    x.finished_at_ms = c.finished_at_ms;
  }
  for (const MetricPoint& m : update.metrics) metrics_[m.job_id].push_back(m);
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> MemoryStore::ClaimJob(const std::string& job_id, const std::string& worker_id,
                                                int64_t now_ms, int64_t lease_expires_at_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return JobNotFound(job_id);
  JobRecord& j = it->second;
  if (j.state != JobState::kQueued) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is ", JobStateName(j.state), ", not queued"));
  }
  j.state = JobState::kRunning;
  j.worker_id = worker_id;
  j.attempt += 1;
  j.fencing_token += 1;
  j.started_at_ms = now_ms;
  j.lease_expires_at_ms = lease_expires_at_ms;
  return j;
}

absl::Status MemoryStore::UpsertWorker(const WorkerRecord& worker) {
  if (absl::Status s = store_internal::CheckWorker(worker); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  workers_[worker.id] = worker;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WorkerRecord>> MemoryStore::ListWorkers() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<WorkerRecord> out;
  for (const auto& [id, w] : workers_) out.push_back(w);
  return out;
}

absl::StatusOr<std::vector<LogLineRecord>> MemoryStore::AppendLogs(const std::string& job_id,
                                                                   const std::vector<std::string>& lines,
                                                                   int64_t ts_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return JobNotFound(job_id);
  std::vector<LogLineRecord> out;
  out.reserve(lines.size());
  int64_t& seq = log_seq_[job_id];
  for (const std::string& text : lines) {
    LogLineRecord r;
    r.id = static_cast<int64_t>(logs_.size()) + 1;
    r.job_id = job_id;
    r.stage_id = it->second.stage_id;
    r.seq = ++seq;
    r.ts_ms = ts_ms;
    r.text = text;
    logs_.push_back({it->second.experiment_id, r});
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<LogLineRecord>> MemoryStore::ReadLogs(const std::string& experiment_id,
                                                                 const std::string& stage_id,
                                                                 int64_t after_id, int limit) {
  if (limit <= 0) return absl::InvalidArgumentError(absl::StrCat("log limit must be positive, got ", limit));
  std::lock_guard<std::mutex> lock(mu_);
  if (experiments_.count(experiment_id) == 0) return ExperimentNotFound(experiment_id);
  std::vector<LogLineRecord> out;
  // ids are index + 1, so the scan can start right after the cursor.
  size_t start = after_id < 0 ? 0 : static_cast<size_t>(std::min<int64_t>(after_id, logs_.size()));
  for (size_t i = start; i < logs_.size() && static_cast<int>(out.size()) < limit; ++i) {
    const StoredLog& l = logs_[i];
    if (l.experiment_id != experiment_id) continue;
    if (!stage_id.empty() && l.line.stage_id != stage_id) continue;
    out.push_back(l.line);
  }
  return out;
}

absl::Status MemoryStore::PutArtifact(const ArtifactRecord& artifact) {
  if (absl::Status s = store_internal::CheckArtifact(artifact); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(artifact.job_id);
  if (it == jobs_.end()) return JobNotFound(artifact.job_id);
  const JobRecord& job = it->second;
  if ((!artifact.experiment_id.empty() && artifact.experiment_id != job.experiment_id) ||
      (!artifact.stage_id.empty() && artifact.stage_id != job.stage_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact ", artifact.name, ": experiment ", artifact.experiment_id, " stage ", artifact.stage_id,
        " do not match job ", job.id, " (experiment ", job.experiment_id, " stage ", job.stage_id, ")"));
  }
  ArtifactRecord row = artifact;
  row.experiment_id = job.experiment_id;
  row.stage_id = job.stage_id;
  artifacts_[{row.job_id, row.name}] = std::move(row);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ArtifactRecord>> MemoryStore::ListArtifacts(const std::string& experiment_id,
                                                                       const std::string& stage_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (experiments_.count(experiment_id) == 0) return ExperimentNotFound(experiment_id);
  std::vector<ArtifactRecord> out;
  for (const auto& [key, a] : artifacts_) {
    if (a.experiment_id != experiment_id) continue;
    if (!stage_id.empty() && a.stage_id != stage_id) continue;
    out.push_back(a);
  }
  std::sort(out.begin(), out.end(), [](const ArtifactRecord& a, const ArtifactRecord& b) {
    return std::tie(a.stage_id, a.name) < std::tie(b.stage_id, b.name);
  });
  return out;
}

absl::StatusOr<std::vector<ArtifactRecord>> MemoryStore::ListJobArtifacts(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (jobs_.count(job_id) == 0) return JobNotFound(job_id);
  std::vector<ArtifactRecord> out;
  for (auto it = artifacts_.lower_bound({job_id, ""}); it != artifacts_.end() && it->first.first == job_id;
       ++it) {
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<ArtifactRecord> MemoryStore::GetArtifact(const std::string& experiment_id,
                                                        const std::string& stage_id,
                                                        const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, a] : artifacts_) {
    if (a.experiment_id == experiment_id && a.stage_id == stage_id && a.name == name) return a;
  }
  return absl::NotFoundError(
      absl::StrCat("artifact ", name, " of experiment ", experiment_id, " stage ", stage_id, " not found"));
}

absl::StatusOr<std::vector<MetricPoint>> MemoryStore::ListMetrics(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (jobs_.count(job_id) == 0) return JobNotFound(job_id);
  std::vector<MetricPoint> out;
  auto it = metrics_.find(job_id);
  if (it != metrics_.end()) out = it->second;
  std::stable_sort(out.begin(), out.end(),
                   [](const MetricPoint& a, const MetricPoint& b) { return a.step < b.step; });
  return out;
}

}  // namespace topolab::server
