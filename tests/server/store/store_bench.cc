// store_bench: how many durable submits per second SqliteStore sustains.
//
//   store_bench [--db PATH] [--count N] [--batch B] [--writers W]
//
// A submit is one experiment with 1-4 jobs (cycling 1,2,3,4) and configs of a
// realistic size; CreateExperiments takes B of them per transaction (the
// scheduler's group commit). W threads submit concurrently. Prints human lines
// and a final JSON line {"submits_per_s": ..., "jobs_per_s": ..., ...}.
// Not a test (no timing assertions); the topolab-bench "submit" subcommand
// measures the same through the real gRPC server.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "server/store/sqlite_store.h"

namespace {

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

using topolab::server::NewExperiment;

NewExperiment MakeSubmit(const std::string& id, int jobs, int64_t now) {
  NewExperiment e;
  e.experiment.id = id;
  e.experiment.name = "bench";
  e.experiment.owner = "bench";
  e.experiment.config_yaml = std::string(600, 'y');
  e.experiment.config_json = std::string(800, 'j');
  e.experiment.config_hash = std::string(64, 'a');
  e.experiment.created_at_ms = now;
  for (int i = 0; i < jobs; ++i) {
    topolab::server::JobRecord j;
    j.id = id + "-" + std::to_string(i);
    j.experiment_id = id;
    j.stage_id = "stage" + std::to_string(i);
    j.kind = "train";
    j.state = i == 0 ? topolab::server::JobState::kQueued : topolab::server::JobState::kBlocked;
    if (i > 0) j.needs = {"stage" + std::to_string(i - 1)};
    j.spec_json = std::string(400, 's');
    j.created_at_ms = now;
    e.jobs.push_back(std::move(j));
  }
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db;
  int count = 20000, batch = 32, writers = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--db")) db = argv[i + 1];
    else if (!std::strcmp(argv[i], "--count")) count = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--writers")) writers = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: store_bench [--db PATH] [--count N] [--batch B] [--writers W]\n");
      return 2;
    }
  }
  std::string tmpdir;
  if (db.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "store-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return 1;
    tmpdir = tmpl;
    db = tmpdir + "/bench.db";
  }
  auto store = topolab::server::SqliteStore::Open(db);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  std::atomic<int> next{0}, jobs_written{0}, failures{0};
  auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = CpuSeconds();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&] {
      while (true) {
        int start = next.fetch_add(batch);
        if (start >= count) return;
        std::vector<NewExperiment> b;
        for (int i = start; i < std::min(count, start + batch); ++i) {
          b.push_back(MakeSubmit("x" + std::to_string(i), 1 + i % 4, i));
          jobs_written += 1 + i % 4;
        }
        if (!(*store)->CreateExperiments(b).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = CpuSeconds() - cpu0;
  // Wall time depends on what else runs on the machine; CPU time says what
  // one dedicated core would sustain.
  std::printf("%d submits (%d jobs) in %.3f s wall, %.3f s CPU, batch %d, %d writer(s), %d failed batches\n",
              count, jobs_written.load(), secs, cpu, batch, writers, failures.load());
  std::printf("{\"submits_per_s\": %.0f, \"submits_per_cpu_s\": %.0f, \"jobs_per_s\": %.0f, "
              "\"batch\": %d, \"writers\": %d}\n",
              count / secs, count / cpu, jobs_written.load() / secs, batch, writers);
  store->reset();
  if (!tmpdir.empty()) std::filesystem::remove_all(tmpdir);
  return failures.load() == 0 ? 0 : 1;
}
