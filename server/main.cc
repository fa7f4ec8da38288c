// topolab-scheduler: flags -> ServerConfig -> SchedulerServer -> run until
// SIGTERM/SIGINT, then a clean shutdown (in-flight RPCs finish, pending
// submits are written, the database is closed).
//
//   topolab-scheduler --listen 127.0.0.1:7070 --data-dir DIR
//                     [--lease-ttl-ms N] [--heartbeat-interval-ms N]
//                     [--group-commit-interval-us N] [--allow-remote]
//
// Prints "listening on HOST:PORT" (the real port when --listen asks for
// port 0) on stdout once it accepts RPCs; logs go to stderr as key=value lines.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <pthread.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "proto/fatal_signal.h"
#include "absl/synchronization/mutex.h"
#include "server/service/server.h"

int main(int argc, char** argv) {
  topolab::InstallFatalSignalHandler("topolab-scheduler");
  topolab::server::ServerConfig config;
  CLI::App app{"topolab-scheduler: keeps experiments in SQLite and leases their jobs to workers"};
  app.add_option("--listen", config.listen, "host:port to listen on (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", config.data_dir, "holds topolab.db and artifacts/")->required();
  app.add_option("--lease-ttl-ms", config.scheduler.lease_ttl_ms,
                 "a lease not renewed by a heartbeat for this long expires")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{24} * 3600 * 1000));
  app.add_option("--heartbeat-interval-ms", config.scheduler.heartbeat_interval_ms,
                 "how often workers heartbeat; dead after 3 missed intervals")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600} * 1000));
  app.add_option("--group-commit-interval-us", config.min_commit_interval_us,
                 "under load, space submit commits at least this far apart (0 = commit as soon "
                 "as the core is free)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  app.add_flag("--allow-remote", config.allow_remote,
               "bind a non-loopback address although there is no TLS or authentication");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  // Debian's Abseil is built with absl::Mutex deadlock detection on, which
  // costs a few percent of submit throughput (a graph update per lock).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  auto log = std::make_shared<spdlog::logger>("scheduler",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %n %v");
  log->flush_on(spdlog::level::info);
  spdlog::register_logger(log);

  // Block the signals in every thread (gRPC's included); one thread waits.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<topolab::server::SchedulerServer>> server =
      topolab::server::SchedulerServer::Start(config, log);
  if (!server.ok()) {
    log->error("event=start_failed error=\"{}\"", server.status().ToString());
    std::fprintf(stderr, "topolab-scheduler: %s\n", std::string(server.status().message()).c_str());
    return absl::IsInvalidArgument(server.status()) ? 2 : 1;
  }
  std::cout << "listening on " << (*server)->address() << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  log->info("event=signal signal={}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  server->reset();
  log->info("event=exit");
  return 0;
}
