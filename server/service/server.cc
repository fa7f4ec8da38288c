// SchedulerServer: wiring and the shutdown order (drain long polls -> stop
// gRPC -> flush submits and stop the core -> close the store).
#include "server/service/server.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "server/store/sqlite_store.h"

namespace topolab::server {

bool IsLoopbackAddress(const std::string& host_port) {
  std::string host = host_port;
  if (!host.empty() && host[0] == '[') {  // [::1]:port
    size_t close = host.find(']');
    host = host.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {  // host:port
    host = host.substr(0, host.find(':'));
  }
  if (host == "localhost" || host == "::1") return true;
  if (host.rfind("127.", 0) == 0) {
    int dots = static_cast<int>(std::count(host.begin(), host.end(), '.'));
    return dots == 3 && host.find_first_not_of("0123456789.") == std::string::npos;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::Start(
    const ServerConfig& config, std::shared_ptr<spdlog::logger> log,
    std::unique_ptr<Store> store) {
  if (!log) {
    log = std::make_shared<spdlog::logger>("scheduler", std::make_shared<spdlog::sinks::null_sink_mt>());
  }
  if (config.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: required");
  if (!IsLoopbackAddress(config.listen)) {
    if (!config.allow_remote) {
      return absl::InvalidArgumentError(
          "--listen: " + config.listen +
          " is not a loopback address; without TLS and tokens the scheduler only binds "
          "loopback (pass --allow-remote to override)");
    }
    log->warn("event=remote_bind listen={} tls=off auth=off note=\"--allow-remote: anyone who "
              "can reach this address can submit and lease jobs\"",
              config.listen);
  } else {
    log->info("event=bind listen={} tls=off auth=off note=\"binding loopback only (no TLS, no "
              "tokens)\"",
              config.listen);
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    return absl::InternalError("--data-dir: cannot create " + config.data_dir + ": " +
                               ec.message());
  }
  std::unique_ptr<SchedulerServer> s(new SchedulerServer());
  s->log_ = log;
  if (store) {
    s->store_ = std::move(store);
  } else {
    const std::string db = (std::filesystem::path(config.data_dir) / "topolab.db").string();
    absl::StatusOr<std::unique_ptr<SqliteStore>> sq = SqliteStore::Open(db);
    if (!sq.ok()) return sq.status();
    s->store_ = std::move(*sq);
    log->info("event=store_open path={}", db);
  }
  absl::StatusOr<std::unique_ptr<ArtifactStore>> arts = ArtifactStore::Open(config.data_dir);
  if (!arts.ok()) return arts.status();
  s->artifacts_ = std::move(*arts);

  s->scheduler_ = std::make_unique<Scheduler>(*s->store_, s->clock_, s->hub_, config.scheduler, log);
  absl::Status rec = s->scheduler_->Recover();
  if (!rec.ok()) return rec;
  s->loop_ = std::make_unique<CoreLoop>(*s->scheduler_, config.tick_ms,
                                        config.min_commit_interval_us);
  s->loop_->Start();

  ServiceDeps deps;
  deps.store = s->store_.get();
  deps.artifacts = s->artifacts_.get();
  deps.loop = s->loop_.get();
  deps.hub = &s->hub_;
  deps.options = config.scheduler;
  deps.log = log;
  s->scheduler_service_ = std::make_unique<SchedulerServiceImpl>(deps);
  s->worker_service_ = std::make_unique<WorkerServiceImpl>(deps);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->scheduler_service_.get());
  builder.RegisterService(s->worker_service_.get());
  builder.SetMaxReceiveMessageSize(8 << 20);
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    s->loop_->Stop();
    return absl::UnavailableError("--listen: cannot bind " + config.listen);
  }
  std::string host = config.listen.substr(0, config.listen.rfind(':'));
  s->address_ = host + ":" + std::to_string(s->port_);
  log->info("event=listening address={} lease_ttl_ms={} heartbeat_interval_ms={}", s->address_,
            config.scheduler.lease_ttl_ms, config.scheduler.heartbeat_interval_ms);
  return s;
}

SchedulerServer::~SchedulerServer() { Shutdown(); }

void SchedulerServer::Shutdown(int64_t grace_ms) {
  {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  log_->info("event=shutdown_begin");
  if (loop_) loop_->Drain();  // parked long polls answer "no job" now
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  }
  if (loop_) loop_->Stop();
  loop_.reset();
  scheduler_.reset();
  server_.reset();
  store_.reset();  // closes the database
  log_->info("event=shutdown_done");
  {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    done_ = true;
  }
  shutdown_cv_.notify_all();
}

void SchedulerServer::Wait() {
  std::unique_lock<std::mutex> lock(shutdown_mu_);
  shutdown_cv_.wait(lock, [this] { return done_; });
}

}  // namespace topolab::server
