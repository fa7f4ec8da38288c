// topolab-worker: the worker daemon, and `run-job`, which runs one job in
// this process (what the daemon's child processes run; users debug specs
// with it, no scheduler needed).
//
//   topolab-worker --scheduler ADDR --work-dir DIR [--device cpu|cuda:N]
//                  [--threads N] [--max-jobs N] [--kinds a,b] [--token T]
//   topolab-worker run-job --spec FILE --out DIR [--inputs DIR] [--resume DIR]
//                  [--device D] [--threads N] [--job-id ID] [--attempt N]
//
// Only this file reads flags; everything else takes a WorkerConfig or
// RunJobOptions.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "proto/fatal_signal.h"
#include "topolab.grpc.pb.h"
#include "worker/daemon/device_probe.h"
#include "worker/daemon/worker_daemon.h"
#include "worker/jobs/job.h"
#include "worker/jobs/runner.h"

namespace {

using topolab::worker::WorkerConfig;

std::vector<std::string> SplitCommaList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(start, comma - start);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

int RunDaemon(WorkerConfig config, const std::string& scheduler, const std::string& kinds_flag,
              double gpu_memory_gb) {
  auto log = spdlog::stderr_color_mt("worker");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ worker %v");

  const std::vector<std::string> registered = topolab::worker::RegisteredJobKinds();
  if (kinds_flag.empty()) {
    config.job_kinds = registered;
  } else {
    for (const std::string& k : SplitCommaList(kinds_flag)) {
      if (std::find(registered.begin(), registered.end(), k) == registered.end()) {
        std::cerr << "topolab-worker: --kinds: '" << k << "' is not a job kind of this worker\n";
        return 2;
      }
      config.job_kinds.push_back(k);
    }
  }
  config.devices = topolab::worker::ProbeDevices(static_cast<int64_t>(gpu_memory_gb * (1LL << 30)));
  if (config.device.rfind("cuda", 0) == 0) {
    // Pinned to one GPU: report only that one (plus nothing else to lease on).
    std::vector<topolab::worker::DeviceInfo> only;
    for (const auto& d : config.devices) {
      if (d.type == "cuda" && d.name == config.device) only.push_back(d);
    }
    if (only.empty()) {
      std::cerr << "topolab-worker: --device " << config.device << ": no such CUDA device ("
                << topolab::worker::CudaDeviceCount() << " visible)\n";
      return 2;
    }
    config.devices = only;
  } else if (config.device == "cpu") {
    config.devices.resize(1);
  }
  if (const char* token = std::getenv("TOPOLAB_WORKER_TOKEN"); token && config.rpc.token.empty()) {
    config.rpc.token = token;
  }

  // Signals: blocked in every thread, taken by one watcher thread that asks
  // the daemon to stop. Children get a clean mask (posix_spawn SETSIGMASK).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  grpc::ChannelArguments args;
  // Come back quickly after a scheduler restart (gRPC's default reconnect
  // backoff grows to two minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(8 << 20);
  auto channel = grpc::CreateCustomChannel(scheduler, grpc::InsecureChannelCredentials(), args);
  log->info("starting scheduler={} work_dir={} device={} max_jobs={} kinds={}", scheduler,
            config.work_dir.string(), config.device.empty() ? "auto" : config.device,
            config.max_jobs, fmt::join(config.job_kinds, ","));
  topolab::worker::WorkerDaemon daemon(std::move(config), topolab::v1::Worker::NewStub(channel),
                                       topolab::v1::Scheduler::NewStub(channel), log);
  std::thread watcher([&] {
    int signo = 0;
    sigwait(&stop_signals, &signo);
    if (signo != 0) log->info("signal {} received; shutting down", signo);
    daemon.Shutdown();
  });
  absl::Status status = daemon.Run();
  // Wake the watcher if Run() ended on its own (registration refused).
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  if (!status.ok()) {
    std::cerr << "topolab-worker: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  topolab::InstallFatalSignalHandler("topolab-worker");
  CLI::App app{"topolab-worker: runs topolab jobs for a scheduler"};
  app.require_subcommand(0, 1);

  WorkerConfig config;
  std::string scheduler;
  std::string work_dir;
  std::string kinds;
  std::string token;
  double gpu_memory_gb = 0;
  int64_t stop_grace_ms = config.stop_grace.count();
  app.add_option("--scheduler", scheduler, "scheduler address HOST:PORT");
  app.add_option("--work-dir", work_dir, "folder for job inputs and outputs");
  app.add_option("--device", config.device, "cpu or cuda:N (default: cpu, plus CUDA when a job asks)")
      ->check([](const std::string& d) -> std::string {
        if (d == "cpu" || (d.rfind("cuda:", 0) == 0 && d.size() > 5 &&
                           d.find_first_not_of("0123456789", 5) == std::string::npos)) {
          return "";
        }
        return "must be cpu or cuda:N";
      });
  app.add_option("--threads", config.threads, "intra-op threads per job (default: cores / max-jobs)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-jobs", config.max_jobs, "jobs run at the same time")->check(CLI::Range(1, 256));
  app.add_option("--kinds", kinds, "comma-separated job kinds to accept (default: all built in)");
  app.add_option("--token", config.rpc.token, "worker token (or TOPOLAB_WORKER_TOKEN)");
  app.add_option("--gpu-memory-gb", gpu_memory_gb, "memory reported per CUDA device")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stop-grace-ms", stop_grace_ms, "SIGTERM -> SIGKILL grace when stopping a job")
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  app.add_flag("--keep-job-dirs", config.keep_job_dirs, "keep <work-dir>/jobs/<id> after a job ends");

  topolab::worker::RunJobOptions run;
  std::string spec, out, inputs, resume;
  CLI::App* run_job = app.add_subcommand("run-job", "run one job spec in this process (no scheduler)");
  run_job->add_option("--spec", spec, "job spec, YAML or JSON")->required();
  run_job->add_option("--out", out, "output folder (created)")->required();
  run_job->add_option("--inputs", inputs, "artifacts of needed stages: DIR/<stage>/<name>");
  run_job->add_option("--resume", resume, "this job's artifacts from an earlier attempt");
  run_job->add_option("--device", run.device, "cpu or cuda:N");
  run_job->add_option("--threads", run.threads, "intra-op threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  run_job->add_option("--job-id", run.job_id, "job id for logs");
  run_job->add_option("--attempt", run.attempt, "attempt number (1 = first)")->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (run_job->parsed()) {
    run.spec_path = spec;
    run.out_dir = out;
    run.inputs_dir = inputs;
    run.resume_dir = resume;
    return topolab::worker::RunJobMain(run);
  }
  if (scheduler.empty() || work_dir.empty()) {
    std::cerr << "topolab-worker: --scheduler and --work-dir are required (or use run-job)\n"
              << app.help();
    return 2;
  }
  config.work_dir = work_dir;
  config.stop_grace = std::chrono::milliseconds(stop_grace_ms);
  return RunDaemon(std::move(config), scheduler, kinds, gpu_memory_gb);
}
