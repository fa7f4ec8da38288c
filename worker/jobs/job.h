// The Job seam: every job kind (train, swapopt, extract, analyze, sleep, ...)
// implements one interface, so the runner (`topolab-worker run-job`, the same
// code the daemon's child process runs) needs to know nothing about a kind.
//
// A job reads its normalised spec (proto/config fills every default), reads
// input artifacts from `inputs_dir`, writes everything it wants uploaded
// under `out_dir`, and reports progress, metrics, log lines and finished
// artifacts through a JobReporter. It may throw (LibTorch does); the runner
// catches std::exception/c10::Error in one place and fails the job with the
// message.
#ifndef TOPOLAB_WORKER_JOBS_JOB_H_
#define TOPOLAB_WORKER_JOBS_JOB_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace topolab::worker {

// How a running job talks to whoever runs it. In the child process this
// writes one JSON event per line on stdout, which the daemon forwards to the
// scheduler. Thread-compatible: call from the job's main thread.
class JobReporter {
 public:
  virtual ~JobReporter() = default;
  // One human-readable log line (no trailing newline).
  virtual void Log(const std::string& line) = 0;
  // Fraction done, in [0, 1].
  virtual void Progress(double fraction) = 0;
  // Newest scalar metrics at `step` (loss, accuracy, img_per_s, ...).
  virtual void Metrics(int64_t step, const std::map<std::string, double>& values) = 0;
  // A file under out_dir is complete and may be uploaded now (checkpoints
  // are announced as soon as they are written so a retry can resume from
  // them even if this process dies). `relative_path` uses '/' separators.
  virtual void ArtifactReady(const std::string& relative_path) = 0;
  // True once the job should stop (SIGTERM received). Jobs check it between
  // steps and return absl::CancelledError().
  virtual bool CancelRequested() = 0;
};

// Discards every report and never asks to cancel: for running a job
// in-process where nobody watches (benchmarks, embedding, tests).
class NullReporter : public JobReporter {
 public:
  void Log(const std::string&) override {}
  void Progress(double) override {}
  void Metrics(int64_t, const std::map<std::string, double>&) override {}
  void ArtifactReady(const std::string&) override {}
  bool CancelRequested() override { return false; }
};

struct JobContext {
  std::string job_id;           // "local" when run without a scheduler
  int attempt = 1;
  nlohmann::json spec;          // normalised job spec (StageSpec::job_spec shape)
  std::filesystem::path out_dir;     // write artifacts here (created, empty or resumable)
  // Artifacts of the stages this job needs: inputs_dir/<stage_id>/<artifact name>.
  std::filesystem::path inputs_dir;
  // This job's own artifacts from earlier attempts (e.g. checkpoints/...):
  // resume_dir/<artifact name>. May not exist.
  std::filesystem::path resume_dir;
  std::string device = "cpu";   // "cpu" or "cuda:N"
  int threads = 0;              // intra-op threads; 0 = all cores
  JobReporter* reporter = nullptr;  // not owned, never null while running
};

class Job {
 public:
  virtual ~Job() = default;
  // Runs to completion. Returns OK on success, CancelledError when
  // CancelRequested() became true, or an error naming what went wrong.
  virtual absl::Status Run(JobContext& context) = 0;
};

using JobFactory = std::function<std::unique_ptr<Job>()>;

// Registry of job kinds (explicit registration, no static initialisers):
// worker/jobs/registry.cc registers every built-in kind.
std::unique_ptr<Job> MakeJob(const std::string& kind);  // nullptr if unknown
std::vector<std::string> RegisteredJobKinds();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_JOB_H_
