// The worker daemon: the scheduler-facing half of `topolab-worker`.
//
// It registers with the scheduler (devices, job kinds, max concurrent jobs),
// long-polls LeaseJob while it has a free slot, and runs each lease in a
// child process (`topolab-worker run-job ...`, see worker/jobs/runner.h):
//
//   1. <work_dir>/jobs/<job_id>/ is recreated: inputs/<stage_id>/<name> gets
//      the artifacts of the stages the job needs, resume/<name> the job's own
//      artifacts from earlier attempts (each SHA-256 checked; names that
//      would escape the folder are refused), spec.json the job spec, out/
//      is where the child writes.
//   2. While the child runs: its log lines go to AppendLogs in batches; the
//      newest progress and metrics go out with a Heartbeat every
//      heartbeat_interval_ms (from RegisterWorker's reply); each announced
//      artifact is uploaded at once (so a retry can resume from it).
//   3. When it exits: every file under out/ not yet uploaded (or changed) is
//      uploaded, then CompleteJob: succeeded iff exit code 0 and a "done"
//      event with ok=true; otherwise the reason ("child killed by signal 9
//      (SIGKILL; possibly out of memory)", ...) plus the stderr tail.
//
// Cancel (a heartbeat reply says so): SIGTERM to the child's process group,
// SIGKILL after `stop_grace`. FAILED_PRECONDITION or NOT_FOUND on a
// lease-scoped call (stale fencing token, the job is gone): the child is
// stopped and the job dropped without completing it. Scheduler unreachable:
// children keep running; every call is retried with exponential backoff and
// the daemon re-registers (with its old id) once the scheduler answers again.
//
// Shutdown(): children are stopped (SIGTERM, then SIGKILL), what they wrote
// is uploaded if the scheduler answers, and their jobs are NOT completed: the
// leases expire and the scheduler requeues them, to resume elsewhere.
#ifndef TOPOLAB_WORKER_DAEMON_WORKER_DAEMON_H_
#define TOPOLAB_WORKER_DAEMON_WORKER_DAEMON_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>
#include <spdlog/logger.h>

#include "absl/status/status.h"
#include "topolab.grpc.pb.h"
#include "worker/daemon/backoff.h"
#include "worker/daemon/transfer.h"

namespace topolab::worker {

struct DeviceInfo {
  std::string type;        // "cpu" or "cuda"
  std::string name;        // "cpu", "cuda:0 (NVIDIA H100 ...)"
  int64_t memory_bytes = 0;
};

// Everything the daemon needs; main.cc fills it from flags. Defaults noted.
struct WorkerConfig {
  std::filesystem::path work_dir;           // REQUIRED; created if missing
  std::string host;                         // default: gethostname()
  std::vector<DeviceInfo> devices;          // reported at registration
  std::vector<std::string> job_kinds;       // reported at registration
  int max_jobs = 1;                         // concurrent children
  // Device passed to children: "cpu", "cuda:N", or empty = "cuda:0" when the
  // job asks for CUDA and a CUDA device is listed, else "cpu".
  std::string device;
  int threads = 0;                          // per child; 0 = cores / max_jobs
  std::string child_binary = "/proc/self/exe";  // runs `run-job`
  RpcOptions rpc;                           // token, unary-call deadline
  std::chrono::milliseconds lease_wait{10000};  // LeaseJob long-poll
  std::chrono::milliseconds stop_grace{10000};  // SIGTERM -> SIGKILL
  std::chrono::milliseconds log_flush_interval{200};
  BackoffOptions backoff;                   // for an unreachable scheduler
  bool keep_job_dirs = false;               // keep <work_dir>/jobs/<id> after
};

// Thread-safe: Run() on one thread, Shutdown() from any other.
class WorkerDaemon {
 public:
  WorkerDaemon(WorkerConfig config, std::unique_ptr<v1::Worker::StubInterface> worker_stub,
               std::unique_ptr<v1::Scheduler::StubInterface> scheduler_stub,
               std::shared_ptr<spdlog::logger> logger);
  ~WorkerDaemon();
  WorkerDaemon(const WorkerDaemon&) = delete;
  WorkerDaemon& operator=(const WorkerDaemon&) = delete;

  // Serves until Shutdown(). Returns OK after a clean shutdown, or the
  // registration error if the scheduler refuses this worker (bad token:
  // Unauthenticated/PermissionDenied; bad request: InvalidArgument).
  absl::Status Run();
  // Asks Run() to stop: cancels the long poll and stops the children.
  void Shutdown();

  std::string worker_id() const;
  // Number of jobs finished (completed or dropped) since start; for tests.
  int64_t finished_jobs() const { return finished_jobs_.load(); }

 private:
  class JobRun;
  struct RunningJob {
    std::shared_ptr<JobRun> run;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  absl::Status Register();
  void StartJob(const v1::Lease& lease);
  void ReapFinishedJobs(bool all);
  // Sleeps up to `d`; returns false early if Shutdown() was called.
  bool SleepUnlessStopping(std::chrono::milliseconds d);
  // Calls `fn` until it returns something other than Unavailable or
  // DeadlineExceeded, backing off between tries; gives up (returning the
  // last status) once `give_up()` is true or the daemon stops.
  absl::Status RetryWhileUnavailable(const std::function<absl::Status()>& fn,
                                     const std::function<bool()>& give_up, const std::string& what);
  bool stopping() const { return stopping_.load(); }

  const WorkerConfig config_;
  std::unique_ptr<v1::Worker::StubInterface> worker_stub_;
  std::unique_ptr<v1::Scheduler::StubInterface> scheduler_stub_;
  std::shared_ptr<spdlog::logger> log_;

  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> finished_jobs_{0};
  std::atomic<int> heartbeat_interval_ms_{2000};

  mutable std::mutex mu_;
  std::condition_variable cv_;     // stopping_, a job slot freed
  std::string worker_id_;          // guarded by mu_
  grpc::ClientContext* lease_context_ = nullptr;  // in-flight long poll, guarded by mu_
  std::list<RunningJob> jobs_;     // guarded by mu_
};

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_DAEMON_WORKER_DAEMON_H_
