// The run-job path; see runner.h.
#include "worker/jobs/runner.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "absl/status/status.h"
#include "proto/config/experiment_config.h"
#include "worker/jobs/runner_env.h"

namespace topolab::worker {
namespace {

// Set from a signal handler, so a lock-free atomic (sig_atomic_t-like).
std::atomic<bool> g_cancel_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void OnCancelSignal(int /*signo*/) {
  g_cancel_requested.store(true, std::memory_order_relaxed);
}

std::string StatusCodeName(absl::StatusCode code) {
  // absl::StatusCodeToString gives "INVALID_ARGUMENT" etc.; keep it stable.
  return absl::StatusCodeToString(code);
}

}  // namespace

absl::StatusOr<nlohmann::json> LoadJobSpec(const std::filesystem::path& spec_path) {
  std::ifstream in(spec_path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read job spec " + spec_path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  config::ParseOptions options;
  options.check_paths = true;
  absl::StatusOr<nlohmann::json> spec = config::ParseJobSpec(buffer.str(), options);
  if (!spec.ok()) {
    return absl::Status(spec.status().code(),
                        spec_path.string() + ": " + std::string(spec.status().message()));
  }
  return spec;
}

absl::Status RunJob(const RunJobOptions& options, JobReporter& reporter) {
  absl::StatusOr<nlohmann::json> spec = LoadJobSpec(options.spec_path);
  if (!spec.ok()) return spec.status();
  const std::string kind = spec->value("kind", std::string());
  std::unique_ptr<Job> job = MakeJob(kind);
  if (job == nullptr) {
    std::string known;
    for (const std::string& k : RegisteredJobKinds()) known += (known.empty() ? "" : ", ") + k;
    return absl::InvalidArgumentError("kind: job kind '" + kind +
                                      "' is not built into this worker (known: " + known + ")");
  }
  if (options.device != "cpu" && options.device.rfind("cuda", 0) != 0) {
    return absl::InvalidArgumentError("--device: must be cpu or cuda:N, got '" + options.device + "'");
  }
  if (options.out_dir.empty()) return absl::InvalidArgumentError("--out: output folder is required");
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError("cannot create output folder " + options.out_dir.string() +
                                       ": " + ec.message());
  }

  int threads = options.threads;
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  JobContext ctx;
  ctx.job_id = options.job_id;
  ctx.attempt = options.attempt;
  ctx.spec = *std::move(spec);
  ctx.out_dir = options.out_dir;
  ctx.inputs_dir = options.inputs_dir;
  ctx.resume_dir = options.resume_dir;
  ctx.device = options.device;
  ctx.threads = threads;
  ctx.reporter = &reporter;

  // The one place exceptions from jobs (LibTorch's c10::Error above all)
  // are caught: no exception crosses the runner.
  try {
    at::set_num_threads(threads);
    reporter.Log("job " + ctx.job_id + " attempt " + std::to_string(ctx.attempt) + ": kind=" +
                 kind + " device=" + ctx.device + " threads=" + std::to_string(threads));
    return job->Run(ctx);
  } catch (const c10::Error& e) {
    return absl::InternalError(std::string("LibTorch error: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("job threw: ") + e.what());
  } catch (...) {
    return absl::InternalError("job threw a non-standard exception");
  }
}

void JsonLinesReporter::Emit(const nlohmann::json& event) {
  // Replace invalid UTF-8 instead of throwing: a log line is never worth
  // losing the job over.
  std::string line = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

JsonLinesReporter::~JsonLinesReporter() {
  if (log_file_ != nullptr) std::fclose(log_file_);
}

void JsonLinesReporter::TeeLogTo(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  std::lock_guard<std::mutex> lock(mu_);
  if (log_file_ == nullptr) log_file_ = std::fopen(path.c_str(), "a");
}

void JsonLinesReporter::Log(const std::string& line) {
  Emit({{"event", "log"}, {"line", line}});
  std::lock_guard<std::mutex> lock(mu_);
  if (log_file_ != nullptr) {
    std::fwrite(line.data(), 1, line.size(), log_file_);
    std::fputc('\n', log_file_);
    std::fflush(log_file_);
  }
}

void JsonLinesReporter::Progress(double fraction) {
  if (!(fraction >= 0)) fraction = 0;
  if (fraction > 1) fraction = 1;
  Emit({{"event", "progress"}, {"fraction", fraction}});
}

void JsonLinesReporter::Metrics(int64_t step, const std::map<std::string, double>& values) {
  Emit({{"event", "metrics"}, {"step", step}, {"values", values}});
}

void JsonLinesReporter::ArtifactReady(const std::string& relative_path) {
  Emit({{"event", "artifact"}, {"path", relative_path}});
}

bool JsonLinesReporter::CancelRequested() {
  return g_cancel_requested.load(std::memory_order_relaxed);
}

void JsonLinesReporter::Done(const absl::Status& status) {
  Emit({{"event", "done"},
        {"ok", status.ok()},
        {"code", StatusCodeName(status.code())},
        {"message", std::string(status.message())}});
}

void JsonLinesReporter::InstallCancelSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = &OnCancelSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

void JsonLinesReporter::SetCancelRequestedForTest(bool value) { g_cancel_requested.store(value); }

int RunJobMain(const RunJobOptions& options) {
  JsonLinesReporter::InstallCancelSignalHandlers();
  // Started by a daemon: ask for SIGTERM when it dies, so a daemon killed
  // with -9 does not leave its jobs running unsupervised (the cancel flag
  // then stops the job at its next check). If it died before prctl, the
  // parent pid has changed already.
  if (const char* parent = std::getenv(kParentPidEnv); parent != nullptr) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (std::to_string(getppid()) != parent) g_cancel_requested.store(true);
  }
  JsonLinesReporter reporter(stdout);
  reporter.TeeLogTo(options.out_dir / "job.log");
  absl::Status status = RunJob(options, reporter);
  if (!status.ok()) reporter.Log("job failed: " + status.ToString());
  reporter.Done(status);
  return status.ok() ? 0 : 1;
}

}  // namespace topolab::worker
