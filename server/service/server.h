// SchedulerServer: everything topolab-scheduler runs, wired together —
// SqliteStore (or an injected Store), ArtifactStore, Scheduler + CoreLoop,
// EventHub, the two gRPC services and the standard health service.
//
// main.cc parses flags into a ServerConfig and calls Start(); the service
// tests start one on 127.0.0.1:0 in-process.
#ifndef TOPOLAB_SERVER_SERVICE_SERVER_H_
#define TOPOLAB_SERVER_SERVICE_SERVER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "server/core/core_loop.h"
#include "server/core/event_hub.h"
#include "server/core/scheduler.h"
#include "server/service/services.h"
#include "server/store/artifact_store.h"
#include "server/store/store.h"

namespace spdlog {
class logger;
}

namespace topolab::server {

struct ServerConfig {
  // host:port to listen on; port 0 picks a free port (see port()).
  std::string listen = "127.0.0.1:7070";
  // Holds topolab.db (SQLite, WAL) and artifacts/. Created if missing.
  std::string data_dir;
  // Without TLS and tokens the scheduler only binds loopback addresses;
  // allow_remote lifts that (and is logged loudly).
  bool allow_remote = false;
  SchedulerOptions scheduler;
  // Period of the lease/liveness/long-poll sweep.
  int64_t tick_ms = 20;
  // Group commit: under load, submit commits are at least this far apart.
  int64_t min_commit_interval_us = 0;
};

// True for 127.0.0.0/8, ::1 and "localhost" (with or without a port).
bool IsLoopbackAddress(const std::string& host_port);

class SchedulerServer {
 public:
  // Opens the data dir, recovers the core and starts serving. `store`
  // replaces the SQLite store when given (tests). Returns InvalidArgument for
  // a non-loopback address without allow_remote or an empty data_dir, and
  // Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> Start(
      const ServerConfig& config, std::shared_ptr<spdlog::logger> log,
      std::unique_ptr<Store> store = nullptr);
  ~SchedulerServer();  // Shutdown()

  // The bound port (the real one when the config asked for port 0).
  int port() const { return port_; }
  // "host:port" with the real port.
  const std::string& address() const { return address_; }

  // Clean shutdown: answers parked long polls, stops accepting RPCs, lets
  // in-flight ones finish (up to `grace_ms`), writes pending submits, stops
  // the core thread and closes the store. Idempotent; thread-safe.
  void Shutdown(int64_t grace_ms = 5000);
  // Blocks until Shutdown() has been called and finished.
  void Wait();

  Store& store() { return *store_; }
  ArtifactStore& artifacts() { return *artifacts_; }

 private:
  SchedulerServer() = default;

  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
  RealClock clock_;
  EventHub hub_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<CoreLoop> loop_;
  std::unique_ptr<SchedulerServiceImpl> scheduler_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
  std::mutex shutdown_mu_;
  std::condition_variable shutdown_cv_;
  bool shut_down_ = false;  // Shutdown() started
  bool done_ = false;       // Shutdown() finished
};

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_SERVICE_SERVER_H_
