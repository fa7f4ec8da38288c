// The run-job path: executes one job spec in this process.
//
// `topolab-worker run-job` (standalone, for users debugging a spec) and the
// daemon's child process run exactly this code. RunJob parses and normalises
// the spec (proto/config ParseJobSpec), sets LibTorch's intra-op threads,
// creates the output folder, looks the kind up in the registry and calls
// Job::Run. It is the ONE place that catches exceptions thrown by jobs
// (std::exception, c10::Error): they become Internal with the message.
//
// The child protocol (what the daemon reads on the child's stdout) is one
// JSON object per line, flushed after each line:
//   {"event":"log","line":"..."}
//   {"event":"progress","fraction":0.25}
//   {"event":"metrics","step":100,"values":{"loss":0.7,"accuracy":0.61}}
//   {"event":"artifact","path":"checkpoints/step_000100.pt"}
//   {"event":"done","ok":true|false,"code":"OK"|"INTERNAL"|...,"message":"..."}
// "done" is always the last event; the process exits 0 iff ok is true.
// Anything else the job prints on stdout is not JSON and is treated by the
// daemon as a log line. worker/daemon/protocol.h parses these lines.
#ifndef TOPOLAB_WORKER_JOBS_RUNNER_H_
#define TOPOLAB_WORKER_JOBS_RUNNER_H_

#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/jobs/job.h"

namespace topolab::worker {

// What `topolab-worker run-job` takes on its command line.
struct RunJobOptions {
  std::filesystem::path spec_path;   // YAML or JSON job spec
  std::filesystem::path out_dir;     // created if missing
  std::filesystem::path inputs_dir;  // may be empty / missing
  std::filesystem::path resume_dir;  // may be empty / missing
  std::string device = "cpu";        // "cpu" or "cuda:N"
  int threads = 0;                   // 0 = hardware concurrency
  std::string job_id = "local";
  int attempt = 1;
};

// Reads and normalises a job spec file. Returns NotFound if the file cannot
// be read, InvalidArgument (with the field path) if it does not validate.
absl::StatusOr<nlohmann::json> LoadJobSpec(const std::filesystem::path& spec_path);

// Runs one job to completion, reporting through `reporter`. Returns the
// job's status: OK, Cancelled, InvalidArgument for a bad spec or unknown
// kind, Internal for an exception thrown by the job (message included).
absl::Status RunJob(const RunJobOptions& options, JobReporter& reporter);

// Writes the child protocol (see above) to a stdio stream. Thread-safe: the
// lines of concurrent calls never interleave. CancelRequested() becomes true
// once SIGTERM or SIGINT arrives, after InstallCancelSignalHandlers().
class JsonLinesReporter : public JobReporter {
 public:
  explicit JsonLinesReporter(std::FILE* out) : out_(out) {}
  ~JsonLinesReporter() override;

  // Also appends every log line to `path` (created with its folder), so the
  // job's log is one of its artifacts (`job.log`). Logging continues on
  // stdout if the file cannot be opened.
  void TeeLogTo(const std::filesystem::path& path);

  void Log(const std::string& line) override;
  void Progress(double fraction) override;
  void Metrics(int64_t step, const std::map<std::string, double>& values) override;
  void ArtifactReady(const std::string& relative_path) override;
  bool CancelRequested() override;
  // Writes the final "done" event for `status`.
  void Done(const absl::Status& status);

  // Makes SIGTERM and SIGINT set the process-wide cancel flag instead of
  // killing the process.
  static void InstallCancelSignalHandlers();
  // Sets or clears the cancel flag (tests).
  static void SetCancelRequestedForTest(bool value);

 private:
  void Emit(const nlohmann::json& event);

  std::mutex mu_;
  std::FILE* out_;
  std::FILE* log_file_ = nullptr;
};

// The whole `run-job` subcommand: installs the signal handlers, runs the job
// with a JsonLinesReporter on stdout, writes "done" and returns the process
// exit code (0 on success, 1 on any failure; the "done" event says why).
int RunJobMain(const RunJobOptions& options);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_RUNNER_H_
