// topolab-bench train-overhead: the cost of TDANN's spatial loss in a
// training step (goal: < 15 % over the same step without it).
//
// Runs the train job's own code path (worker/jobs/train: the SimCLR or
// supervised objective and the spatial LossTerm from tdann_terms.h) on a
// ResNet-18 with random images: forward, loss, backward and an SGD step.
// Both configurations use the same seed and batches; the spatial one adds
// SL_Rel on all 8 blocks (one neighbourhood of <= 500 units per layer per
// step, pools built on fresh retinotopic sheets). Reports the median step
// time of each after warm-up steps.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/optim/sgd.h>
#include <torch/utils.h>
#include <unistd.h>

#include "tests/bench/bench.h"
#include "worker/jobs/train/objective.h"
#include "worker/jobs/train/tdann_terms.h"
#include "worker/science/models/model_factory.h"

namespace topolab::bench {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Median seconds per step over `steps` steps after `warmup` steps.
double StepTime(const std::string& objective_name, double alpha, int64_t batch, int64_t size,
                int warmup, int steps, double* spatial_loss) {
  torch::manual_seed(0);
  auto model = science::MakeModel(Json{{"family", "resnet18"}}, 10);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    std::exit(1);
  }
  science::VisionModel& net = **model;
  net.train();
  Json spec = {{"objective", objective_name},
               {"spatial_weight", alpha},
               {"seed", 0},
               {"simclr", {{"temperature", 0.1}}},
               {"spatial", {{"pool_windows", 2000}}}};
  worker::TrainOptions to;
  to.objective = objective_name;
  auto objective = worker::MakeObjective(to, spec);
  worker::NullReporter rep;
  worker::JobContext ctx;
  ctx.out_dir = fs::temp_directory_path() / ("topolab_bench_train_" + std::to_string(::getpid()));
  ctx.reporter = &rep;
  auto terms = worker::MakeLossTerms(spec, net, ctx);
  if (!objective.ok() || !terms.ok()) {
    std::fprintf(stderr, "setup failed\n");
    std::exit(1);
  }
  torch::optim::SGD opt(net.parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  std::vector<double> times;
  for (int s = 0; s < warmup + steps; ++s) {
    worker::StepBatch b;
    b.images = at::rand({batch, 3, size, size}, gen);
    b.labels = at::randint(10, {batch}, gen, at::kLong);
    b.step = s;
    b.generator = &gen;
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    worker::StepLoss r = (*objective)->Compute(net, b);
    at::Tensor loss = r.loss;
    for (auto& term : *terms) loss = loss + term->Compute(r.output, &r.scalars);
    loss.backward();
    opt.step();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) times.push_back(dt);
    if (r.scalars.count("spatial_loss")) *spatial_loss = r.scalars["spatial_loss"];
  }
  fs::remove_all(ctx.out_dir);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int RunTrainOverheadBench(int argc, char** argv) {
  CLI::App app{"training step time with SL_Rel on 8 layers vs without"};
  int64_t batch = 32, size = 64;
  int warmup = 2, steps = 6, threads = 2;
  double alpha = 0.25;
  std::string objective = "simclr";
  app.add_option("--batch", batch, "images per step (SimCLR: 2 views each)");
  app.add_option("--size", size, "image side in px");
  app.add_option("--warmup", warmup, "untimed steps");
  app.add_option("--steps", steps, "timed steps");
  app.add_option("--threads", threads, "intra-op threads");
  app.add_option("--alpha", alpha, "spatial weight of the spatial run");
  app.add_option("--objective", objective, "simclr | supervised");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);
  double sl = 0, unused = 0;
  const double base = StepTime(objective, 0.0, batch, size, warmup, steps, &unused);
  const double spatial = StepTime(objective, alpha, batch, size, warmup, steps, &sl);
  const double overhead = 100.0 * (spatial - base) / base;
  std::printf("train step (%s, batch %lld, %lld px, %d threads): without spatial loss %.1f ms, "
              "with SL_Rel on 8 layers %.1f ms (spatial loss %.4f): overhead %.1f %% (goal < 15 %%)\n",
              objective.c_str(), static_cast<long long>(batch), static_cast<long long>(size), threads,
              1e3 * base, 1e3 * spatial, sl, overhead);
  std::printf("{\"objective\": \"%s\", \"batch\": %lld, \"image_size\": %lld, \"threads\": %d, "
              "\"step_ms_base\": %.2f, \"step_ms_spatial\": %.2f, \"overhead_pct\": %.2f}\n",
              objective.c_str(), static_cast<long long>(batch), static_cast<long long>(size), threads,
              1e3 * base, 1e3 * spatial, overhead);
  return 0;
}

}  // namespace topolab::bench
