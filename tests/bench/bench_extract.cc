// topolab-bench extract-rss: peak resident memory of the extract job for 1x
// and Nx the stimuli (the 640 gratings streamed N times). Streaming
// extraction should keep memory flat: goal ratio < 1.2.
//
// Each configuration runs in a forked child (fresh address space), which
// builds a random ResNet-18, saves it as a checkpoint, runs the real extract
// job (activations streamed to float16 .npy, all grating analyses) and
// reports getrusage(RUSAGE_SELF).ru_maxrss through a pipe.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tests/bench/bench.h"
#include "worker/jobs/extract/extract_job.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"

namespace topolab::bench {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

struct ChildResult {
  double max_rss_mb = 0;
  double seconds = 0;
  bool ok = false;
};

// Runs in the child: returns 0 on success.
int RunOnce(const fs::path& dir, int64_t repeat, int64_t image_size, int64_t batch, int threads,
            double* seconds) {
  at::set_num_threads(threads);
  at::manual_seed(0);
  auto model = science::MakeModel({{"family", "resnet18"}}, 10);
  if (!model.ok()) return 2;
  Json meta = {{"model", {{"family", "resnet18"}}}, {"num_classes", 10}, {"image_size", image_size}};
  if (!science::SaveCheckpoint((dir / "inputs/train/checkpoints/final.pt").string(), **model,
                               nullptr, 0, meta).ok()) {
    return 3;
  }
  model->reset();
  worker::NullReporter rep;
  worker::JobContext ctx;
  ctx.out_dir = dir / "out";
  ctx.inputs_dir = dir / "inputs";
  fs::create_directories(ctx.out_dir);
  ctx.reporter = &rep;
  ctx.spec = {{"kind", "extract"},
              {"needs", {"train"}},
              {"stimuli", {"sine_gratings"}},
              {"float16", true},
              {"batch_size", batch},
              {"stimulus_repeat", repeat},
              {"wiring", {{"enabled", false}}},
              {"analysis", {{"opm_smoothness", {{"repetitions", 2}}}}}};
  auto t0 = std::chrono::steady_clock::now();
  absl::Status s = worker::MakeExtractJob()->Run(ctx);
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.ok()) {
    std::fprintf(stderr, "extract failed: %s\n", s.ToString().c_str());
    return 4;
  }
  return 0;
}

ChildResult RunInChild(int64_t repeat, int64_t image_size, int64_t batch, int threads) {
  ChildResult r;
  fs::path dir = fs::temp_directory_path() /
                 ("topolab_bench_extract_" + std::to_string(::getpid()) + "_" + std::to_string(repeat));
  fs::remove_all(dir);
  int fds[2];
  if (pipe(fds) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    double seconds = 0;
    int rc = RunOnce(dir, repeat, image_size, batch, threads, &seconds);
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    double msg[2] = {static_cast<double>(ru.ru_maxrss) / 1024.0, seconds};
    if (write(fds[1], msg, sizeof(msg)) != sizeof(msg)) rc = 5;
    close(fds[1]);
    _exit(rc);
  }
  close(fds[1]);
  double msg[2] = {0, 0};
  ssize_t got = read(fds[0], msg, sizeof(msg));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.ok = got == sizeof(msg) && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  r.max_rss_mb = msg[0];
  r.seconds = msg[1];
  fs::remove_all(dir);
  return r;
}

}  // namespace

int RunExtractRssBench(int argc, char** argv) {
  CLI::App app{"extraction peak RSS for 1x vs Nx the stimuli"};
  int64_t repeat = 10, image_size = 32, batch = 64;
  int threads = 2;
  app.add_option("--repeat", repeat, "stimulus multiple of the large run (default 10)");
  app.add_option("--image-size", image_size, "stimulus side in px (default 32)");
  app.add_option("--batch", batch, "images per forward pass (default 64)");
  app.add_option("--threads", threads, "LibTorch intra-op threads (default 2)");
  CLI11_PARSE(app, argc, argv);
  std::printf("extract-rss: ResNet-18, %lld px, batch %lld, gratings x1 and x%lld\n",
              static_cast<long long>(image_size), static_cast<long long>(batch),
              static_cast<long long>(repeat));
  ChildResult one = RunInChild(1, image_size, batch, threads);
  std::printf("  x1:  %6d stimuli  peak RSS %.1f MB  %.1f s%s\n", 640, one.max_rss_mb, one.seconds,
              one.ok ? "" : "  (FAILED)");
  ChildResult many = RunInChild(repeat, image_size, batch, threads);
  std::printf("  x%lld: %6lld stimuli  peak RSS %.1f MB  %.1f s%s\n", static_cast<long long>(repeat),
              static_cast<long long>(640 * repeat), many.max_rss_mb, many.seconds,
              many.ok ? "" : "  (FAILED)");
  const double ratio = one.max_rss_mb > 0 ? many.max_rss_mb / one.max_rss_mb : 0;
  std::printf("  ratio %.3f (goal < 1.2)\n", ratio);
  Json out = {{"stimuli_1x", 640},
              {"stimuli_nx", 640 * repeat},
              {"rss_1x_mb", one.max_rss_mb},
              {"rss_nx_mb", many.max_rss_mb},
              {"rss_ratio", ratio},
              {"seconds_1x", one.seconds},
              {"seconds_nx", many.seconds},
              {"image_size", image_size}};
  std::printf("%s\n", out.dump().c_str());
  return one.ok && many.ok ? 0 : 1;
}

}  // namespace topolab::bench
