// topolab-bench entry point: dispatches to one benchmark by name.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/bench/bench.h"

namespace topolab::bench {

std::string DefaultSchedulerAddress() {
  const char* env = std::getenv("TOPOLAB_SCHEDULER");
  return env && *env ? env : "127.0.0.1:7070";
}

namespace {

// One line per benchmark.
const Benchmark kBenchmarks[] = {
    {"submit", "durable submits/s with N concurrent clients (p50/p99 latency)", RunSubmitBench},
    {"latency", "submit -> job-start latency with an idle worker long-polling", RunLatencyBench},
#ifdef TOPOLAB_BENCH_TDANN  // LibTorch benches (TOPOLAB_BUILD_WORKER)
    {"swapopt", "SwapOpt swaps/s on a 500-unit window; 1 vs 2 thread windows/s", RunSwapoptBench},
    {"train-overhead", "train step time with SL_Rel on 8 layers vs without", RunTrainOverheadBench},
    {"extract-rss", "extract job peak RSS for 1x vs 10x the stimuli (goal ratio < 1.2)", RunExtractRssBench},
#endif
};

void Usage() {
  std::fprintf(stderr, "usage: topolab-bench <benchmark> [flags]  (<benchmark> --help for flags)\n\n");
  for (const Benchmark& b : kBenchmarks) std::fprintf(stderr, "  %-10s %s\n", b.name, b.summary);
}

}  // namespace
}  // namespace topolab::bench

int main(int argc, char** argv) {
  using topolab::bench::kBenchmarks;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    topolab::bench::Usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& b : kBenchmarks) {
    if (std::strcmp(argv[1], b.name) == 0) return b.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "topolab-bench: unknown benchmark '%s'\n\n", argv[1]);
  topolab::bench::Usage();
  return 2;
}
