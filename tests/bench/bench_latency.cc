// topolab-bench latency: submit -> job-start latency. The bench registers
// itself as a CPU worker offering the `sleep` kind (over the Worker gRPC
// service, so it needs no torch), keeps one LeaseJob long poll parked, and
// submits one single-stage `sleep` experiment at a time. Latency = from just
// before SubmitExperiment is sent to when the lease for that experiment
// arrives at the worker. Each leased job is completed at once, and the next
// submit waits until the worker's poll is parked again (an idle worker).
//
// Run it against a scheduler with no other queued jobs this worker could
// take (e.g. a fresh data dir): the submit bench's jobs ask for a GPU, so
// they never match this CPU worker.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
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

using Clock = std::chrono::steady_clock;

const char* kYaml = R"(name: bench-latency
owner: bench-latency
priority: 1000
stages:
  - id: s
    kind: sleep
    seconds: 0
)";

}  // namespace

int RunLatencyBench(int argc, char** argv) {
  CLI::App app{"submit -> job-start latency with an idle worker long-polling"};
  std::string address = DefaultSchedulerAddress();
  int count = 200;
  app.add_option("--scheduler", address, "scheduler address")->capture_default_str();
  app.add_option("--count", count, "experiments to submit")->capture_default_str()->check(CLI::Range(1, 1000000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  grpc::ChannelArguments wargs;
  wargs.SetInt("topolab.bench.worker", 1);  // the worker gets its own connection
  auto worker = v1::Worker::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), wargs));
  auto client = v1::Scheduler::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

  std::string worker_id;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::RegisterWorkerRequest req;
    req.set_host("topolab-bench");
    req.add_job_kinds("sleep");
    req.set_max_concurrent_jobs(1);
    v1::Device* d = req.add_devices();
    d->set_type("cpu");
    d->set_name("bench");
    v1::RegisterWorkerResponse resp;
    grpc::Status s = worker->RegisterWorker(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "topolab-bench latency: %s: %s\n", address.c_str(),
                   s.error_message().c_str());
      return 1;
    }
    worker_id = resp.worker_id();
  }

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> started;  // experiment id -> lease arrival
  bool polling = false, stop = false;
  int worker_errors = 0;

  std::thread worker_thread([&] {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) return;
        polling = true;
      }
      cv.notify_all();
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      v1::LeaseJobRequest req;
      req.set_worker_id(worker_id);
      req.set_wait_ms(2000);
      v1::LeaseJobResponse resp;
      grpc::Status s = worker->LeaseJob(&ctx, req, &resp);
      auto arrived = Clock::now();
      {
        std::lock_guard<std::mutex> lock(mu);
        polling = false;
        if (!s.ok()) ++worker_errors;
        if (s.ok() && resp.has_lease()) started[resp.lease().experiment_id()] = arrived;
      }
      cv.notify_all();
      if (!s.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      if (resp.has_lease()) {
        grpc::ClientContext cctx;
        v1::CompleteJobRequest creq;
        creq.set_job_id(resp.lease().job_id());
        creq.set_fencing_token(resp.lease().fencing_token());
        creq.set_succeeded(true);
        v1::CompleteJobResponse cresp;
        worker->CompleteJob(&cctx, creq, &cresp);
      }
    }
  });

  std::vector<double> latencies_ms;
  int errors = 0;
  for (int i = 0; i < count; ++i) {
    {
      // Wait until the worker is idle and its poll is (about to be) parked;
      // the short pause lets the LeaseJob reach the scheduler.
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return polling; });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    grpc::ClientContext ctx;
    v1::SubmitExperimentRequest req;
    req.set_config_yaml(kYaml);
    v1::SubmitExperimentResponse resp;
    auto t0 = Clock::now();
    grpc::Status s = client->SubmitExperiment(&ctx, req, &resp);
    if (!s.ok()) {
      if (++errors <= 5) std::fprintf(stderr, "submit failed: %s\n", s.error_message().c_str());
      continue;
    }
    std::unique_lock<std::mutex> lock(mu);
    bool ok = cv.wait_for(lock, std::chrono::seconds(10),
                          [&] { return started.count(resp.experiment_id()) > 0; });
    if (!ok) {
      if (++errors <= 5) std::fprintf(stderr, "no lease within 10 s for %s\n", resp.experiment_id().c_str());
      continue;
    }
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(started[resp.experiment_id()] - t0).count());
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  worker_thread.join();

  const double p50 = Percentile(latencies_ms, 50), p99 = Percentile(latencies_ms, 99);
  std::printf("scheduler %s: %zu jobs started (%d errors, %d worker errors)\n", address.c_str(),
              latencies_ms.size(), errors, worker_errors);
  std::printf("submit -> start latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99,
              Percentile(latencies_ms, 100));
  std::printf("{\"start_p50_ms\": %.3f, \"start_p99_ms\": %.3f}\n", p50, p99);
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}

}  // namespace topolab::bench
