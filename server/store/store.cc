// State names of store.h and the input checks every Store implementation
// shares (store_checks.h).
#include "server/store/store.h"

#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/sha256.h"
#include "server/store/artifact_store.h"
#include "server/store/store_checks.h"

namespace topolab::server {

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kBlocked: return "blocked";
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

const char* ExperimentStateName(ExperimentState s) {
  switch (s) {
    case ExperimentState::kQueued: return "queued";
    case ExperimentState::kRunning: return "running";
    case ExperimentState::kSucceeded: return "succeeded";
    case ExperimentState::kFailed: return "failed";
    case ExperimentState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<JobState> ParseJobState(const std::string& name) {
  for (JobState s : {JobState::kBlocked, JobState::kQueued, JobState::kRunning,
                     JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    if (name == JobStateName(s)) return s;
  }
  return std::nullopt;
}

std::optional<ExperimentState> ParseExperimentState(const std::string& name) {
  for (ExperimentState s : {ExperimentState::kQueued, ExperimentState::kRunning,
                            ExperimentState::kSucceeded, ExperimentState::kFailed,
                            ExperimentState::kCancelled}) {
    if (name == ExperimentStateName(s)) return s;
  }
  return std::nullopt;
}

namespace store_internal {

bool IsValid(JobState s) { return ParseJobState(JobStateName(s)).has_value(); }
bool IsValid(ExperimentState s) { return ParseExperimentState(ExperimentStateName(s)).has_value(); }

absl::Status CheckNewExperiments(const std::vector<NewExperiment>& batch) {
  std::set<std::string> experiment_ids;
  std::set<std::string> job_ids;
  for (const NewExperiment& e : batch) {
    const ExperimentRecord& x = e.experiment;
    if (x.id.empty()) return absl::InvalidArgumentError("experiment with an empty id");
    if (!experiment_ids.insert(x.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("experiment ", x.id, " appears twice in the batch"));
    }
    if (!IsValid(x.state)) {
      return absl::InvalidArgumentError(absl::StrCat("experiment ", x.id, ": invalid state ",
                                                     static_cast<int>(x.state)));
    }
    std::set<std::string> stage_ids;
    for (const JobRecord& j : e.jobs) {
      if (j.id.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("experiment ", x.id, ": job with an empty id"));
      }
      if (!job_ids.insert(j.id).second) {
        return absl::InvalidArgumentError(absl::StrCat("job ", j.id, " appears twice in the batch"));
      }
      if (!j.experiment_id.empty() && j.experiment_id != x.id) {
        return absl::InvalidArgumentError(absl::StrCat("job ", j.id, ": experiment_id ", j.experiment_id,
                                                       " differs from its experiment ", x.id));
      }
      if (j.stage_id.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("job ", j.id, ": empty stage_id"));
      }
      if (!stage_ids.insert(j.stage_id).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("experiment ", x.id, ": stage id ", j.stage_id, " appears twice"));
      }
      if (!IsValid(j.state)) {
        return absl::InvalidArgumentError(
            absl::StrCat("job ", j.id, ": invalid state ", static_cast<int>(j.state)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStateUpdate(const StateUpdate& update) {
  for (const JobRecord& j : update.jobs) {
    if (!IsValid(j.state)) {
      return absl::InvalidArgumentError(
          absl::StrCat("job ", j.id, ": invalid state ", static_cast<int>(j.state)));
    }
  }
  for (const StateUpdate::ExperimentChange& c : update.experiments) {
    if (!IsValid(c.state)) {
      return absl::InvalidArgumentError(
          absl::StrCat("experiment ", c.id, ": invalid state ", static_cast<int>(c.state)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckArtifact(const ArtifactRecord& a) {
  if (a.job_id.empty()) return absl::InvalidArgumentError("artifact with an empty job_id");
  absl::Status name_ok = ValidateArtifactName(a.name);
  if (!name_ok.ok()) return name_ok;
  if (!IsSha256Hex(a.sha256)) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact ", a.name, ": sha256 '", a.sha256, "' is not 64 lowercase hex digits"));
  }
  if (a.size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("artifact ", a.name, ": negative size ", a.size));
  }
  return absl::OkStatus();
}

absl::Status CheckWorker(const WorkerRecord& w) {
  if (w.id.empty()) return absl::InvalidArgumentError("worker with an empty id");
  if (w.max_concurrent_jobs < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker ", w.id, ": negative max_concurrent_jobs ", w.max_concurrent_jobs));
  }
  return absl::OkStatus();
}

}  // namespace store_internal
}  // namespace topolab::server
