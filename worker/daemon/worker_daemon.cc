// The worker daemon; see worker_daemon.h.
#include "worker/daemon/worker_daemon.h"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "proto/grpc_status.h"
#include "worker/daemon/child_supervisor.h"
#include "worker/daemon/protocol.h"
#include "worker/jobs/runner_env.h"

namespace topolab::worker {
namespace {

using Millis = std::chrono::milliseconds;

bool IsTransient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

// The lease is no longer ours: stale fencing token, or the job is gone.
bool LeaseLost(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) || absl::IsNotFound(s);
}

std::string Tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

std::string LocalHostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

// Caps the logs buffered while the scheduler is away.
constexpr size_t kMaxPendingLogLines = 20000;
constexpr size_t kMaxLogBatch = 500;

}  // namespace

// ------------------------------------------------------------------ JobRun
// One lease, from download to CompleteJob. Execute() runs on the job's own
// thread (and supervises the child there); a heartbeat thread and a sender
// thread (logs + artifact uploads) run beside it while the child lives.
class WorkerDaemon::JobRun {
 public:
  JobRun(WorkerDaemon* daemon, v1::Lease lease)
      : d_(daemon), lease_(std::move(lease)),
        dir_(daemon->config_.work_dir / "jobs" / lease_.job_id()),
        tag_("job=" + lease_.job_id() + " attempt=" + std::to_string(lease_.attempt())) {}

  void Execute();
  // Daemon shutdown: stop the child (it is not completed).
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (child_ != nullptr) child_->RequestStop();
  }

 private:
  absl::Status PrepareDirs();
  absl::Status DownloadInputs();
  std::vector<std::string> ChildArgv() const;
  void OnEvent(const ChildEvent& e);
  void AddLog(std::string line);
  void HeartbeatLoop();
  void SenderLoop();
  void UploadIfChanged(const std::string& name);
  void FlushLogs();
  void Drop(const absl::Status& why, const std::string& during);
  void StopChild() {
    std::lock_guard<std::mutex> lock(mu_);
    if (child_ != nullptr) child_->RequestStop();
  }
  void Complete(bool succeeded, const std::string& message);
  // Give up on retries once the lease is lost.
  bool GiveUp() const { return dropped_.load(); }

  WorkerDaemon* d_;
  const v1::Lease lease_;
  const std::filesystem::path dir_;
  const std::string tag_;

  std::mutex mu_;
  std::condition_variable cv_;
  ChildSupervisor* child_ = nullptr;  // set while the child lives
  double progress_ = 0;
  int64_t step_ = 0;
  std::map<std::string, double> metrics_;
  std::vector<std::string> pending_logs_;
  size_t dropped_log_lines_ = 0;
  std::deque<std::string> pending_artifacts_;
  bool sender_finish_ = false;     // sender: drain and exit
  bool heartbeat_finish_ = false;  // heartbeat: exit
  // name -> (size, mtime) of what was uploaded, to skip unchanged files.
  std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> uploaded_;

  std::atomic<bool> dropped_{false};
  std::atomic<bool> cancelled_{false};
};

absl::Status WorkerDaemon::JobRun::PrepareDirs() {
  std::error_code ec;
  // A lease always starts from a clean folder: what an earlier attempt left
  // here is either on the scheduler (and comes back via own_artifacts) or lost.
  std::filesystem::remove_all(dir_, ec);
  for (const char* sub : {"inputs", "resume", "out"}) {
    std::filesystem::create_directories(dir_ / sub, ec);
    if (ec) return absl::InternalError("cannot create " + (dir_ / sub).string() + ": " + ec.message());
  }
  std::ofstream spec(dir_ / "spec.json", std::ios::binary | std::ios::trunc);
  spec << lease_.spec_json();
  spec.close();
  if (!spec) return absl::InternalError("cannot write " + (dir_ / "spec.json").string());
  return absl::OkStatus();
}

absl::Status WorkerDaemon::JobRun::DownloadInputs() {
  auto fetch = [&](const v1::InputArtifact& a, const std::filesystem::path& base) -> absl::Status {
    absl::StatusOr<std::filesystem::path> dest = SafeJoin(base, a.name());
    if (!dest.ok()) {
      return absl::InvalidArgumentError("input " + a.stage_id() + "/" + a.name() + ": " +
                                        std::string(dest.status().message()));
    }
    return d_->RetryWhileUnavailable(
        [&] {
          return DownloadArtifact(*d_->scheduler_stub_, d_->config_.rpc, lease_.experiment_id(),
                                  a.stage_id(), a.name(), a.sha256(), *dest);
        },
        [&] { return GiveUp(); }, tag_ + " download " + a.stage_id() + "/" + a.name());
  };
  for (const v1::InputArtifact& a : lease_.inputs()) {
    absl::Status s = absl::OkStatus();
    if (a.stage_id().empty() || a.stage_id() == "." || a.stage_id() == ".." ||
        a.stage_id().find('/') != std::string::npos) {
      s = absl::InvalidArgumentError("input stage id '" + a.stage_id() + "' is not a folder name");
    } else {
      s = fetch(a, dir_ / "inputs" / a.stage_id());
    }
    if (!s.ok()) return s;
  }
  for (const v1::InputArtifact& a : lease_.own_artifacts()) {
    absl::Status s = fetch(a, dir_ / "resume");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<std::string> WorkerDaemon::JobRun::ChildArgv() const {
  const WorkerConfig& c = d_->config_;
  std::string device = c.device;
  if (device.empty()) {
    device = "cpu";
    nlohmann::json spec = nlohmann::json::parse(lease_.spec_json(), nullptr, false);
    bool wants_cuda = spec.is_object() && spec.contains("resources") &&
                      spec["resources"].is_object() &&
                      spec["resources"].value("device", std::string()) == "cuda";
    bool has_cuda = std::any_of(c.devices.begin(), c.devices.end(),
                                [](const DeviceInfo& dev) { return dev.type == "cuda"; });
    if (wants_cuda && has_cuda) device = "cuda:0";
  }
  int threads = c.threads;
  if (threads <= 0) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, c.max_jobs));
  }
  return {c.child_binary,
          "run-job",
          "--spec", (dir_ / "spec.json").string(),
          "--out", (dir_ / "out").string(),
          "--inputs", (dir_ / "inputs").string(),
          "--resume", (dir_ / "resume").string(),
          "--device", device,
          "--threads", std::to_string(threads),
          "--job-id", lease_.job_id(),
          "--attempt", std::to_string(lease_.attempt())};
}

void WorkerDaemon::JobRun::AddLog(std::string line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_logs_.size() >= kMaxPendingLogLines) {
    pending_logs_.erase(pending_logs_.begin());
    ++dropped_log_lines_;
  }
  pending_logs_.push_back(std::move(line));
}

void WorkerDaemon::JobRun::OnEvent(const ChildEvent& e) {
  switch (e.type) {
    case ChildEvent::Type::kLog:
      AddLog(e.text);
      break;
    case ChildEvent::Type::kProgress: {
      std::lock_guard<std::mutex> lock(mu_);
      progress_ = e.fraction;
      break;
    }
    case ChildEvent::Type::kMetrics: {
      std::lock_guard<std::mutex> lock(mu_);
      step_ = e.step;
      for (const auto& [k, v] : e.metrics) metrics_[k] = v;
      break;
    }
    case ChildEvent::Type::kArtifact: {
      absl::Status s = CheckArtifactName(e.text);
      if (!s.ok()) {
        AddLog("worker: ignoring announced artifact: " + std::string(s.message()));
        break;
      }
      std::lock_guard<std::mutex> lock(mu_);
      pending_artifacts_.push_back(e.text);
      cv_.notify_all();
      break;
    }
    case ChildEvent::Type::kDone:
      break;  // the supervisor's result carries it
  }
}

void WorkerDaemon::JobRun::Drop(const absl::Status& why, const std::string& during) {
  if (dropped_.exchange(true)) return;
  d_->log_->warn("{} dropped: {} during {}; stopping the child", tag_, why.ToString(), during);
  StopChild();
}

void WorkerDaemon::JobRun::HeartbeatLoop() {
  Backoff backoff(d_->config_.backoff, std::hash<std::string>()(lease_.job_id()));
  std::chrono::steady_clock::time_point next = std::chrono::steady_clock::now();
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      next += Millis(d_->heartbeat_interval_ms_.load());
      cv_.wait_until(lock, next, [&] { return heartbeat_finish_; });
      if (heartbeat_finish_) return;
    }
    if (dropped_.load()) return;
    v1::HeartbeatRequest req;
    req.set_worker_id(d_->worker_id());
    req.set_job_id(lease_.job_id());
    req.set_fencing_token(lease_.fencing_token());
    {
      std::lock_guard<std::mutex> lock(mu_);
      req.set_progress(progress_);
      req.set_step(step_);
      for (const auto& [k, v] : metrics_) (*req.mutable_metrics())[k] = v;
    }
    grpc::ClientContext ctx;
    PrepareContext(ctx, d_->config_.rpc, std::max(Millis(1000), Millis(d_->heartbeat_interval_ms_.load())));
    v1::HeartbeatResponse resp;
    absl::Status s = FromGrpcStatus(d_->worker_stub_->Heartbeat(&ctx, req, &resp));
    if (s.ok()) {
      backoff.Reset();
      if (resp.cancel() && !cancelled_.exchange(true)) {
        d_->log_->info("{} cancelled by the scheduler; stopping the child", tag_);
        AddLog("worker: job cancelled; stopping the child (SIGTERM, SIGKILL after " +
               std::to_string(d_->config_.stop_grace.count()) + " ms)");
        StopChild();
      }
    } else if (LeaseLost(s)) {
      Drop(s, "heartbeat");
      return;
    } else {
      // Scheduler away: the child keeps running; beat again after a backoff
      // delay (never later than the regular interval would allow).
      d_->log_->warn("{} heartbeat failed: {}", tag_, s.ToString());
      next = std::chrono::steady_clock::now() +
             std::min(backoff.NextDelay(), Millis(d_->heartbeat_interval_ms_.load())) -
             Millis(d_->heartbeat_interval_ms_.load());
    }
  }
}

void WorkerDaemon::JobRun::FlushLogs() {
  while (!dropped_.load()) {
    std::vector<std::string> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (dropped_log_lines_ > 0) {
        pending_logs_.insert(pending_logs_.begin(),
                             "worker: " + std::to_string(dropped_log_lines_) +
                                 " log lines dropped while the scheduler was unreachable");
        dropped_log_lines_ = 0;
      }
      size_t n = std::min(pending_logs_.size(), kMaxLogBatch);
      if (n == 0) return;
      batch.assign(std::make_move_iterator(pending_logs_.begin()),
                   std::make_move_iterator(pending_logs_.begin() + static_cast<std::ptrdiff_t>(n)));
      pending_logs_.erase(pending_logs_.begin(), pending_logs_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    v1::AppendLogsRequest req;
    req.set_job_id(lease_.job_id());
    req.set_fencing_token(lease_.fencing_token());
    for (std::string& line : batch) req.add_lines(std::move(line));
    absl::Status s = d_->RetryWhileUnavailable(
        [&] {
          grpc::ClientContext ctx;
          PrepareContext(ctx, d_->config_.rpc, d_->config_.rpc.deadline);
          v1::AppendLogsResponse resp;
          return FromGrpcStatus(d_->worker_stub_->AppendLogs(&ctx, req, &resp));
        },
        [&] { return GiveUp(); }, tag_ + " AppendLogs");
    if (LeaseLost(s)) {
      Drop(s, "AppendLogs");
    } else if (!s.ok()) {
      d_->log_->warn("{} AppendLogs failed, {} lines lost: {}", tag_, req.lines_size(), s.ToString());
    }
  }
}

void WorkerDaemon::JobRun::UploadIfChanged(const std::string& name) {
  if (dropped_.load()) return;
  std::filesystem::path file = dir_ / "out" / std::filesystem::path(name);
  std::error_code ec;
  auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::is_regular_file(status)) {
    AddLog("worker: announced artifact " + name + " is not a regular file under the output folder");
    return;
  }
  const uintmax_t size = std::filesystem::file_size(file, ec);
  const auto mtime = std::filesystem::last_write_time(file, ec);
  auto it = uploaded_.find(name);
  if (it != uploaded_.end() && it->second == std::make_pair(size, mtime)) return;
  absl::StatusOr<v1::Artifact> artifact;
  absl::Status s = d_->RetryWhileUnavailable(
      [&] {
        artifact = UploadArtifactFile(*d_->worker_stub_, d_->config_.rpc, lease_.job_id(),
                                      lease_.fencing_token(), name, file);
        return artifact.status();
      },
      [&] { return GiveUp(); }, tag_ + " upload " + name);
  if (s.ok()) {
    uploaded_[name] = {size, mtime};
    d_->log_->info("{} uploaded artifact={} size={} sha256={}", tag_, name, artifact->size(),
                   artifact->sha256());
  } else if (LeaseLost(s)) {
    Drop(s, "upload of " + name);
  } else {
    d_->log_->error("{} upload of {} failed: {}", tag_, name, s.ToString());
    AddLog("worker: upload of " + name + " failed: " + s.ToString());
  }
}

void WorkerDaemon::JobRun::SenderLoop() {
  while (true) {
    std::deque<std::string> artifacts;
    bool finish;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, d_->config_.log_flush_interval,
                   [&] { return sender_finish_ || !pending_artifacts_.empty(); });
      artifacts.swap(pending_artifacts_);
      finish = sender_finish_;
    }
    FlushLogs();
    std::set<std::string> seen;
    for (const std::string& name : artifacts) {
      if (seen.insert(name).second) UploadIfChanged(name);
    }
    if (finish) {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_artifacts_.empty() && (pending_logs_.empty() || dropped_.load())) return;
    }
  }
}

void WorkerDaemon::JobRun::Complete(bool succeeded, const std::string& message) {
  v1::CompleteJobRequest req;
  req.set_job_id(lease_.job_id());
  req.set_fencing_token(lease_.fencing_token());
  req.set_succeeded(succeeded);
  req.set_message(message);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, v] : metrics_) (*req.mutable_metrics())[k] = v;
  }
  absl::Status s = d_->RetryWhileUnavailable(
      [&] {
        grpc::ClientContext ctx;
        PrepareContext(ctx, d_->config_.rpc, d_->config_.rpc.deadline);
        v1::CompleteJobResponse resp;
        return FromGrpcStatus(d_->worker_stub_->CompleteJob(&ctx, req, &resp));
      },
      [&] { return GiveUp(); }, tag_ + " CompleteJob");
  if (s.ok()) {
    d_->log_->info("{} completed succeeded={} message=\"{}\"", tag_, succeeded, message);
  } else if (LeaseLost(s)) {
    Drop(s, "CompleteJob");
  } else {
    d_->log_->error("{} CompleteJob failed: {}", tag_, s.ToString());
  }
}

void WorkerDaemon::JobRun::Execute() {
  d_->log_->info("{} leased experiment={} stage={} kind={} token={} inputs={} own_artifacts={}", tag_,
                 lease_.experiment_id(), lease_.stage_id(), lease_.kind(), lease_.fencing_token(),
                 lease_.inputs_size(), lease_.own_artifacts_size());
  AddLog("worker " + d_->worker_id() + " on " + d_->config_.host + ": starting attempt " +
         std::to_string(lease_.attempt()));
  std::thread heartbeat([this] { HeartbeatLoop(); });
  std::thread sender([this] { SenderLoop(); });
  auto finish_threads = [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sender_finish_ = true;
      cv_.notify_all();
    }
    sender.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      heartbeat_finish_ = true;
      cv_.notify_all();
    }
  };

  absl::Status prep = PrepareDirs();
  if (prep.ok()) prep = DownloadInputs();
  if (!prep.ok()) {
    if (dropped_.load() || d_->stopping()) {
      finish_threads();
      heartbeat.join();
      return;
    }
    d_->log_->error("{} cannot start: {}", tag_, prep.ToString());
    AddLog("worker: cannot start the job: " + prep.ToString());
    finish_threads();
    Complete(false, "worker could not prepare the job: " + prep.ToString());
    heartbeat.join();
    return;
  }

  ChildOptions options;
  options.argv = ChildArgv();
  options.working_dir = dir_;
  // The child stops itself if this daemon dies (kill -9): see runner.h.
  options.extra_env = {std::string(kParentPidEnv) + "=" + std::to_string(getpid())};
  options.grace = d_->config_.stop_grace;
  ChildSupervisor child(options);
  absl::Status started = child.Start();
  ChildResult result;
  if (started.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      child_ = &child;
    }
    // Shutdown() or a cancel may have come before child_ was set.
    if (d_->stopping() || dropped_.load() || cancelled_.load()) child.RequestStop();
    d_->log_->info("{} child pid={} started", tag_, child.pid());
    result = child.Wait([this](const ChildEvent& e) { OnEvent(e); },
                        [this](const std::string& line) { AddLog("stderr: " + line); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      child_ = nullptr;
    }
  }

  bool succeeded = false;
  std::string message;
  if (!started.ok()) {
    message = "worker could not start the child: " + started.ToString();
  } else if (result.exit.exited && result.exit.code == 0 && result.saw_done && result.done.ok) {
    succeeded = true;
  } else if (result.saw_done && !result.done.ok) {
    message = result.done.code.empty() ? result.done.text : result.done.code + ": " + result.done.text;
  } else {
    message = "child " + DescribeExit(result.exit);
    if (result.killed_after_grace) {
      message = "child killed by SIGKILL after not stopping within the " +
                std::to_string(d_->config_.stop_grace.count()) + " ms grace period";
    } else if (result.exit.exited && result.exit.code == 0) {
      message += " without reporting \"done\"";
    }
    if (!result.stderr_tail.empty()) message += "; stderr: " + Tail(result.stderr_tail, 1000);
  }
  if (started.ok()) {
    d_->log_->info("{} child {} saw_done={}", tag_, DescribeExit(result.exit), result.saw_done);
  }

  if (cancelled_.load()) {
    finish_threads();
    // The scheduler has cancelled the job already; tell it the child is gone.
    Complete(false, "cancelled");
    heartbeat.join();
    return;
  }
  if (!dropped_.load()) {
    // Everything the child wrote that was not announced (or changed since).
    std::vector<std::string> names;
    std::error_code ec;
    const std::filesystem::path out = dir_ / "out";
    for (auto it = std::filesystem::recursive_directory_iterator(out, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string name = std::filesystem::relative(it->path(), out, ec).generic_string();
      if (CheckArtifactName(name).ok()) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    std::lock_guard<std::mutex> lock(mu_);
    for (std::string& n : names) pending_artifacts_.push_back(std::move(n));
    if (!succeeded && !message.empty()) pending_logs_.push_back("worker: job failed: " + message);
  }
  finish_threads();  // drains logs and uploads
  if (!dropped_.load() && !d_->stopping()) Complete(succeeded, message);
  if (d_->stopping() && !dropped_.load()) {
    d_->log_->info("{} left for the scheduler to requeue (worker shutting down)", tag_);
  }
  heartbeat.join();
  if (!d_->config_.keep_job_dirs) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

// ------------------------------------------------------------ WorkerDaemon

WorkerDaemon::WorkerDaemon(WorkerConfig config, std::unique_ptr<v1::Worker::StubInterface> worker_stub,
                           std::unique_ptr<v1::Scheduler::StubInterface> scheduler_stub,
                           std::shared_ptr<spdlog::logger> logger)
    : config_([&] {
        if (config.host.empty()) config.host = LocalHostName();
        if (config.max_jobs < 1) config.max_jobs = 1;
        // Children run in their job folder, so every path handed to them
        // must be absolute.
        std::error_code ec;
        std::filesystem::path abs = std::filesystem::absolute(config.work_dir, ec);
        if (!ec) config.work_dir = abs.lexically_normal();
        return std::move(config);
      }()),
      worker_stub_(std::move(worker_stub)),
      scheduler_stub_(std::move(scheduler_stub)),
      log_(std::move(logger)) {}

WorkerDaemon::~WorkerDaemon() {
  Shutdown();
  ReapFinishedJobs(/*all=*/true);
}

std::string WorkerDaemon::worker_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return worker_id_;
}

void WorkerDaemon::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_.exchange(true)) return;
  if (lease_context_ != nullptr) lease_context_->TryCancel();
  for (RunningJob& job : jobs_) job.run->Stop();
  cv_.notify_all();
}

bool WorkerDaemon::SleepUnlessStopping(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stopping_.load(); });
}

absl::Status WorkerDaemon::RetryWhileUnavailable(const std::function<absl::Status()>& fn,
                                                 const std::function<bool()>& give_up,
                                                 const std::string& what) {
  Backoff backoff(config_.backoff, std::hash<std::string>()(what));
  while (true) {
    absl::Status s = fn();
    if (!IsTransient(s) || give_up() || stopping()) return s;
    Millis delay = backoff.NextDelay();
    if (backoff.attempts() == 1 || backoff.attempts() % 10 == 0) {
      log_->warn("{} failed ({}); scheduler unreachable, retry {} in {} ms", what, s.ToString(),
                 backoff.attempts(), delay.count());
    }
    if (!SleepUnlessStopping(delay)) return s;
  }
}

absl::Status WorkerDaemon::Register() {
  v1::RegisterWorkerRequest req;
  req.set_worker_id(worker_id());
  req.set_host(config_.host);
  for (const DeviceInfo& dev : config_.devices) {
    v1::Device* d = req.add_devices();
    d->set_type(dev.type);
    d->set_name(dev.name);
    d->set_memory_bytes(dev.memory_bytes);
  }
  for (const std::string& kind : config_.job_kinds) req.add_job_kinds(kind);
  req.set_max_concurrent_jobs(config_.max_jobs);
  v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  PrepareContext(ctx, config_.rpc, config_.rpc.deadline);
  absl::Status s = FromGrpcStatus(worker_stub_->RegisterWorker(&ctx, req, &resp));
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    worker_id_ = resp.worker_id();
  }
  if (resp.heartbeat_interval_ms() > 0) heartbeat_interval_ms_.store(resp.heartbeat_interval_ms());
  log_->info("registered worker={} host={} kinds={} max_jobs={} heartbeat_interval_ms={} lease_ttl_ms={}",
             resp.worker_id(), config_.host, config_.job_kinds.size(), config_.max_jobs,
             heartbeat_interval_ms_.load(), resp.lease_ttl_ms());
  return absl::OkStatus();
}

void WorkerDaemon::StartJob(const v1::Lease& lease) {
  auto run = std::make_shared<JobRun>(this, lease);
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard<std::mutex> lock(mu_);
  RunningJob job;
  job.run = run;
  job.done = done;
  job.thread = std::thread([this, run, done] {
    run->Execute();
    finished_jobs_.fetch_add(1);
    done->store(true);
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  });
  jobs_.push_back(std::move(job));
}

void WorkerDaemon::ReapFinishedJobs(bool all) {
  std::list<RunningJob> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (all || it->done->load()) {
        finished.splice(finished.end(), jobs_, it++);
      } else {
        ++it;
      }
    }
  }
  for (RunningJob& job : finished) job.thread.join();
}

absl::Status WorkerDaemon::Run() {
  std::error_code ec;
  std::filesystem::create_directories(config_.work_dir / "jobs", ec);
  if (ec) {
    return absl::PermissionDeniedError("cannot create work dir " + (config_.work_dir / "jobs").string() +
                                       ": " + ec.message());
  }
  Backoff backoff(config_.backoff);
  bool registered = false;
  while (!stopping()) {
    ReapFinishedJobs(/*all=*/false);
    if (!registered) {
      absl::Status s = Register();
      if (s.ok()) {
        registered = true;
        backoff.Reset();
      } else if (absl::IsUnauthenticated(s) || absl::IsPermissionDenied(s) ||
                 absl::IsInvalidArgument(s)) {
        log_->error("registration refused: {}", s.ToString());
        Shutdown();
        ReapFinishedJobs(/*all=*/true);
        return s;
      } else {
        Millis delay = backoff.NextDelay();
        log_->warn("cannot register ({}); retry in {} ms", s.ToString(), delay.count());
        SleepUnlessStopping(delay);
        continue;
      }
    }
    {
      // Wait for a free slot.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stopping_.load()) return true;
        int active = 0;
        for (const RunningJob& j : jobs_) active += j.done->load() ? 0 : 1;
        return active < config_.max_jobs;
      });
      if (stopping_.load()) break;
    }
    v1::LeaseJobRequest req;
    req.set_worker_id(worker_id());
    req.set_wait_ms(static_cast<int32_t>(config_.lease_wait.count()));
    v1::LeaseJobResponse resp;
    grpc::ClientContext ctx;
    PrepareContext(ctx, config_.rpc, config_.lease_wait + Millis(10000));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_.load()) break;
      lease_context_ = &ctx;
    }
    absl::Status s = FromGrpcStatus(worker_stub_->LeaseJob(&ctx, req, &resp));
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_context_ = nullptr;
    }
    if (stopping()) {
      // A lease granted just as we stop is left to expire and requeue.
      if (s.ok() && resp.has_lease()) {
        log_->warn("job={} leased during shutdown; it will be requeued", resp.lease().job_id());
      }
      break;
    }
    if (s.ok()) {
      backoff.Reset();
      if (resp.has_lease()) StartJob(resp.lease());
    } else if (absl::IsNotFound(s) || absl::IsFailedPrecondition(s)) {
      log_->warn("LeaseJob: {}; registering again", s.ToString());
      registered = false;
    } else if (IsTransient(s)) {
      Millis delay = backoff.NextDelay();
      log_->warn("LeaseJob: scheduler unreachable ({}); retry in {} ms, then register again",
                 s.ToString(), delay.count());
      registered = false;
      SleepUnlessStopping(delay);
    } else {
      Millis delay = backoff.NextDelay();
      log_->error("LeaseJob failed: {}; retry in {} ms", s.ToString(), delay.count());
      SleepUnlessStopping(delay);
    }
  }
  log_->info("shutting down: stopping {} running job(s)", [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_.size();
  }());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (RunningJob& job : jobs_) job.run->Stop();
  }
  ReapFinishedJobs(/*all=*/true);
  log_->info("worker stopped");
  return absl::OkStatus();
}

}  // namespace topolab::worker
