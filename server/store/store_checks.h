// Input checks shared by every Store implementation (internal to
// server/store), so SqliteStore and MemoryStore reject exactly the same bad
// input with exactly the same codes and messages.
#ifndef TOPOLAB_SERVER_STORE_STORE_CHECKS_H_
#define TOPOLAB_SERVER_STORE_STORE_CHECKS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/store/store.h"

namespace topolab::server::store_internal {

bool IsValid(JobState s);
bool IsValid(ExperimentState s);

// Checks a CreateExperiments batch before anything is written. Returns
// InvalidArgument (naming the experiment/job) for: an empty experiment, job or
// stage id; an invalid state enum; a job whose experiment_id is set and differs
// from its experiment's id; duplicate experiment ids, job ids or (within one
// experiment) stage ids inside the batch. Existence of ids already stored is the
// store's check (AlreadyExists).
absl::Status CheckNewExperiments(const std::vector<NewExperiment>& batch);

// The experiment id a new job is stored under: its own if set, else its
// experiment's (CreateExperiments fills an empty JobRecord::experiment_id).
inline const std::string& JobExperimentId(const NewExperiment& e, const JobRecord& j) {
  return j.experiment_id.empty() ? e.experiment.id : j.experiment_id;
}

// Checks the shape of a StateUpdate (valid enums). InvalidArgument.
absl::Status CheckStateUpdate(const StateUpdate& update);

// Checks an artifact row's own fields: job_id set, name valid
// (ValidateArtifactName), sha256 a lowercase hex digest, size >= 0.
absl::Status CheckArtifact(const ArtifactRecord& a);

// Checks a worker row: id set, max_concurrent_jobs >= 0.
absl::Status CheckWorker(const WorkerRecord& w);

}  // namespace topolab::server::store_internal

#endif  // TOPOLAB_SERVER_STORE_STORE_CHECKS_H_
