// topolab-bench: one binary, one subcommand per benchmark.
//
//   topolab-bench <subcommand> [flags...]
//
// Every benchmark prints human-readable lines and ends with ONE line holding
// a JSON object of its figures (what scripts and the README read).
//
// Adding a benchmark (science engineers): write tests/bench/bench_<name>.cc
// defining `int Run<Name>Bench(int argc, char** argv)` (argv[0] is the
// subcommand name; parse the rest with CLI11), declare it below, add one line
// to kBenchmarks in bench_main.cc and the source (plus its libraries) to
// tests/bench/CMakeLists.txt.
#ifndef TOPOLAB_TESTS_BENCH_BENCH_H_
#define TOPOLAB_TESTS_BENCH_BENCH_H_

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace topolab::bench {

// --- subcommands
int RunSubmitBench(int argc, char** argv);   // bench_submit.cc
int RunLatencyBench(int argc, char** argv);  // bench_latency.cc
int RunSwapoptBench(int argc, char** argv);        // bench_swapopt.cc
int RunTrainOverheadBench(int argc, char** argv);  // bench_train.cc
int RunExtractRssBench(int argc, char** argv);     // bench_extract.cc

struct Benchmark {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

// --- helpers shared by benchmarks

// The p-th percentile (p in [0, 100]) by nearest rank; 0 for no samples.
inline double Percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
  size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(i, samples.size() - 1)];
}

// Scheduler address from --scheduler, else $TOPOLAB_SCHEDULER, else 127.0.0.1:7070.
std::string DefaultSchedulerAddress();

}  // namespace topolab::bench

#endif  // TOPOLAB_TESTS_BENCH_BENCH_H_
