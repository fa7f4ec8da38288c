// topolab-bench submit: durable submits per second against a running
// scheduler. N client threads, each with its own channel (its own TCP
// connection), submit back to back until M submits are acknowledged; an
// acknowledged submit is on disk (the scheduler group-commits and acks after
// the commit). Reports throughput and per-submit latency.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "tests/bench/bench.h"
#include "topolab.grpc.pb.h"

namespace topolab::bench {

namespace {
// One sleep stage; resources ask for a GPU so a CPU-only worker never leases
// these, and a low priority keeps them behind anything else.
const char* kDefaultYaml = R"(name: bench-submit
priority: -1000
resources:
  device: cuda
  gpus: 1
stages:
  - id: s
    kind: sleep
    seconds: 0
)";
}  // namespace

int RunSubmitBench(int argc, char** argv) {
  CLI::App app{"durable submits/s with N concurrent clients"};
  std::string address = DefaultSchedulerAddress();
  int clients = 16;
  int count = 10000;
  std::string yaml_file;
  app.add_option("--scheduler", address, "scheduler address")->capture_default_str();
  app.add_option("--clients", clients, "concurrent clients")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--count", count, "submits in total")->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--yaml", yaml_file, "experiment to submit (default: one sleep stage)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::string yaml = kDefaultYaml;
  if (!yaml_file.empty()) {
    std::ifstream in(yaml_file);
    if (!in) {
      std::fprintf(stderr, "topolab-bench submit: cannot read %s\n", yaml_file.c_str());
      return 2;
    }
    yaml.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::vector<std::unique_ptr<v1::Scheduler::Stub>> stubs;
  for (int i = 0; i < clients; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("topolab.bench.client", i);  // distinct args -> distinct connection
    stubs.push_back(v1::Scheduler::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  // Warm up every connection (and fail early if the scheduler is not there).
  for (int i = 0; i < clients; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::SubmitExperimentRequest req;
    req.set_config_yaml(yaml);
    req.set_owner("bench");
    v1::SubmitExperimentResponse resp;
    grpc::Status s = stubs[i]->SubmitExperiment(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "topolab-bench submit: %s: %s\n", address.c_str(),
                   s.error_message().c_str());
      return 1;
    }
  }

  std::atomic<int> next{0};
  std::atomic<int> errors{0};
  std::mutex mu;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(count);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      std::vector<double> mine;
      v1::SubmitExperimentRequest req;
      req.set_config_yaml(yaml);
      req.set_owner("bench");
      while (next.fetch_add(1) < count) {
        grpc::ClientContext ctx;
        v1::SubmitExperimentResponse resp;
        auto t0 = std::chrono::steady_clock::now();
        grpc::Status s = stubs[i]->SubmitExperiment(&ctx, req, &resp);
        auto t1 = std::chrono::steady_clock::now();
        if (!s.ok()) {
          if (errors.fetch_add(1) < 5) {
            std::fprintf(stderr, "submit failed: %s\n", s.error_message().c_str());
          }
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = static_cast<double>(latencies_ms.size()) / seconds;
  const double p50 = Percentile(latencies_ms, 50), p99 = Percentile(latencies_ms, 99);
  std::printf("scheduler %s: %zu durable submits by %d clients in %.3f s (%d errors)\n",
              address.c_str(), latencies_ms.size(), clients, seconds, errors.load());
  std::printf("throughput %.0f submits/s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", rate,
              p50, p99, Percentile(latencies_ms, 100));
  std::printf("{\"submits_per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n", rate, p50, p99);
  std::fflush(stdout);
  return errors.load() == 0 ? 0 : 1;
}

}  // namespace topolab::bench
