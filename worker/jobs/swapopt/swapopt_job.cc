// `swapopt` job: checkpoint (or user .npy files) -> SwapOpt per layer ->
// positions, neighbourhood pools and metrics. See swapopt_job.h.
#include "worker/jobs/swapopt/swapopt_job.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/science/io/npy.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"
#include "worker/science/stimuli/stimuli.h"
#include "worker/science/tdann/sheet.h"
#include "worker/science/tdann/swapopt.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

struct Options {
  sci::SwapOptOptions swap;            // width_mm here is the explicit override (0 = per layer)
  std::vector<std::string> layers;
  std::string checkpoint_from, positions_from;
  sci::SheetScale scale = sci::SheetScale::kHuman;
  double jitter_mm = 0.3;
  int64_t image_size = 0, batch_size = 64, eval_windows = 200;
  std::string normalize = "imagenet";
  sci::NeighborhoodPoolOptions pool;
  std::string responses_path, positions_path;   // standalone inputs
};

// Reads a key of the (already validated and defaulted) spec with a type
// check, so a hand-written standalone JSON gets a clear error too.
template <typename T>
absl::Status Get(const Json& obj, const std::string& path, const std::string& key, T* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  try {
    *out = obj[key].get<T>();
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(path + "." + key + ": wrong type");
  }
  return absl::OkStatus();
}

absl::StatusOr<Options> ParseOptions(const Json& spec) {
  Options o;
  const Json s = spec.value("swapopt", Json::object());
  const std::string p = "swapopt";
  int64_t seed = spec.value("seed", static_cast<int64_t>(0));
  std::string accept = "strict", cost = "two_row", scale = "human";
  absl::Status st;
  for (absl::Status x : {Get(s, p, "neighborhoods", &o.swap.num_windows),
                         Get(s, p, "swaps_per_neighborhood", &o.swap.swaps_per_window),
                         Get(s, p, "width_mm", &o.swap.width_mm),
                         Get(s, p, "max_units", &o.swap.max_units),
                         Get(s, p, "min_units", &o.swap.min_units), Get(s, p, "accept", &accept),
                         Get(s, p, "cost", &cost), Get(s, p, "layers", &o.layers),
                         Get(s, p, "seed", &seed), Get(s, p, "checkpoint_from", &o.checkpoint_from),
                         Get(s, p, "positions_from", &o.positions_from),
                         Get(s, p, "scale", &scale), Get(s, p, "jitter_mm", &o.jitter_mm),
                         Get(s, p, "image_size", &o.image_size),
                         Get(s, p, "batch_size", &o.batch_size),
                         Get(s, p, "normalize", &o.normalize),
                         Get(s, p, "eval_windows", &o.eval_windows),
                         Get(s, p, "pool_windows", &o.pool.num_windows),
                         Get(s, p, "pool_percentile", &o.pool.percentile),
                         Get(s, p, "pool_min_size", &o.pool.min_size),
                         Get(s, p, "pool_max_size", &o.pool.max_size)}) {
    if (!x.ok()) return x;
  }
  const Json in = spec.value("inputs", Json::object());
  if (auto x = Get(in, "inputs", "responses", &o.responses_path); !x.ok()) return x;
  if (auto x = Get(in, "inputs", "positions", &o.positions_path); !x.ok()) return x;
  auto a = sci::ParseSwapAccept(accept);
  if (!a.ok()) return absl::InvalidArgumentError("swapopt." + std::string(a.status().message()));
  auto c = sci::ParseSwapCost(cost);
  if (!c.ok()) return absl::InvalidArgumentError("swapopt." + std::string(c.status().message()));
  auto sc = sci::ParseSheetScale(scale);
  if (!sc.ok()) return absl::InvalidArgumentError("swapopt.scale: must be human or train");
  o.swap.accept = *a;
  o.swap.cost = *c;
  o.scale = *sc;
  if (seed < 0) return absl::InvalidArgumentError("swapopt.seed: must be >= 0");
  o.swap.seed = static_cast<uint64_t>(seed);
  o.pool.seed = static_cast<uint64_t>(seed) + 1;
  if (o.swap.num_windows < 1) return absl::InvalidArgumentError("swapopt.neighborhoods: must be >= 1");
  if (o.swap.swaps_per_window < 1) {
    return absl::InvalidArgumentError("swapopt.swaps_per_neighborhood: must be >= 1");
  }
  if (o.swap.width_mm < 0) return absl::InvalidArgumentError("swapopt.width_mm: must be >= 0");
  if (o.swap.max_units < 2) return absl::InvalidArgumentError("swapopt.max_units: must be >= 2");
  if (o.swap.min_units < 2 || o.swap.min_units > o.swap.max_units) {
    return absl::InvalidArgumentError("swapopt.min_units: must be in [2, max_units]");
  }
  if (o.pool.max_size < o.pool.min_size) {
    return absl::InvalidArgumentError("swapopt.pool_max_size: must be >= pool_min_size");
  }
  if (o.batch_size < 1) return absl::InvalidArgumentError("swapopt.batch_size: must be >= 1");
  if (o.responses_path.empty() != o.positions_path.empty()) {
    return absl::InvalidArgumentError(
        "inputs: give both responses and positions (standalone mode) or neither");
  }
  return o;
}

absl::StatusOr<at::Tensor> ReadNpyChecked(const fs::path& path, const std::string& what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return absl::NotFoundError(what + ": no file " + path.string());
  try {
    return sci::ReadNpy(path.string());
  } catch (const std::exception& e) {
    return absl::DataLossError(what + ": " + e.what());
  }
}

absl::Status WriteJson(const fs::path& path, const Json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  f.close();
  if (!f) return absl::InternalError("cannot write " + path.string());
  return absl::OkStatus();
}

absl::StatusOr<fs::path> FindCheckpoint(const fs::path& inputs_dir, const std::string& stage) {
  absl::StatusOr<std::string> found =
      sci::FindStageCheckpoint((inputs_dir / stage / "checkpoints").string());
  if (!found.ok()) return absl::NotFoundError("swapopt.checkpoint_from: " + std::string(found.status().message()));
  return fs::path(*found);
}

// One layer's problem and, after Optimise, its result.
struct LayerTask {
  std::string name;
  at::Tensor responses;    // [images, U] float32
  at::Tensor initial;      // [U, 2] float32
  double width_mm = 0;
  double side_mm = 0;      // 0 when positions came from elsewhere
  uint64_t seed = 0;
  // Outputs.
  sci::SwapOptResult result;
  absl::Status status;
  double eval_before = NAN, eval_after = NAN;
  at::Tensor pool;
  double seconds = 0;
};

// Runs SwapOpt on all tasks: layers in parallel on `threads` workers (largest
// first); when there are fewer layers than threads, each layer gets the
// spare threads for its windows. The calling thread reports progress and
// polls for cancellation.
absl::Status OptimiseAll(std::vector<LayerTask>& tasks, const Options& o, int threads,
                         JobReporter& rep) {
  std::atomic<int64_t> done_windows{0};
  std::atomic<bool> cancel{false};
  const int64_t total = o.swap.num_windows * static_cast<int64_t>(tasks.size());
  std::vector<size_t> order(tasks.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tasks[a].responses.size(1) > tasks[b].responses.size(1);
  });
  const int workers = std::max(1, std::min<int>(threads, static_cast<int>(tasks.size())));
  const int per_layer = std::max(1, threads / workers);
  std::atomic<size_t> next{0};
  auto work = [&] {
    while (!cancel.load()) {
      const size_t k = next.fetch_add(1);
      if (k >= order.size()) break;
      LayerTask& t = tasks[order[k]];
      const auto start = std::chrono::steady_clock::now();
      sci::SwapOptOptions so = o.swap;
      so.width_mm = t.width_mm;
      so.seed = t.seed;
      so.threads = per_layer;
      int64_t seen = 0;
      so.progress = [&](int64_t d, int64_t) {
        done_windows.fetch_add(d - seen);
        seen = d;
      };
      so.cancelled = [&] { return cancel.load(); };
      auto before = sci::MeanLocalCost(t.responses, t.initial, t.width_mm, o.eval_windows,
                                       so.max_units, so.min_units, t.seed ^ 0xe7a1ULL);
      auto res = sci::RunSwapOpt(t.responses, t.initial, so);
      if (!res.ok()) {
        t.status = res.status();
        if (!absl::IsCancelled(t.status)) cancel.store(true);  // fail fast
        continue;
      }
      t.result = std::move(*res);
      if (before.ok()) t.eval_before = *before;
      auto after = sci::MeanLocalCost(t.responses, t.result.positions, t.width_mm, o.eval_windows,
                                      so.max_units, so.min_units, t.seed ^ 0xe7a1ULL);
      if (after.ok()) t.eval_after = *after;
      t.pool = sci::BuildNeighborhoodPool(t.result.positions, t.width_mm, o.pool);
      t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  };
  std::atomic<int> running{workers};
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      work();
      running.fetch_sub(1);
    });
  }
  // Report from this thread only (JobReporter is thread-compatible).
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    rep.Progress(total > 0 ? std::min(1.0, double(done_windows.load()) / double(total)) : 1.0);
    if (rep.CancelRequested()) cancel.store(true);
  }
  for (auto& th : pool) th.join();
  rep.Progress(1.0);
  if (rep.CancelRequested()) return absl::CancelledError("swapopt cancelled");
  for (const LayerTask& t : tasks) {
    if (!t.status.ok() && !absl::IsCancelled(t.status)) {
      return absl::Status(t.status.code(), "layer " + t.name + ": " + std::string(t.status.message()));
    }
  }
  for (const LayerTask& t : tasks) {
    if (!t.status.ok()) return t.status;
  }
  return absl::OkStatus();
}

Json LayerMetrics(const LayerTask& t, const Options& o) {
  const sci::SwapOptResult& r = t.result;
  Json j = {{"units", t.responses.size(1)},
            {"images", t.responses.size(0)},
            {"width_mm", t.width_mm},
            {"windows", o.swap.num_windows},
            {"windows_used", r.windows_used},
            {"swaps_attempted", r.swaps_attempted},
            {"swaps_accepted", r.swaps_accepted},
            {"accepted_fraction",
             r.swaps_attempted ? double(r.swaps_accepted) / double(r.swaps_attempted) : 0.0},
            {"mean_cost_before", r.mean_cost_before},
            {"mean_cost_after", r.mean_cost_after},
            {"eval_windows", o.eval_windows},
            {"eval_cost_before", t.eval_before},
            {"eval_cost_after", t.eval_after},
            {"pool_rows", t.pool.defined() ? t.pool.size(0) : 0},
            {"pool_k", t.pool.defined() ? t.pool.size(1) : 0},
            {"seed", t.seed},
            {"seconds", t.seconds}};
  if (t.side_mm > 0) j["side_mm"] = t.side_mm;
  return j;
}

Json Settings(const Options& o) {
  return {{"neighborhoods", o.swap.num_windows},
          {"swaps_per_neighborhood", o.swap.swaps_per_window},
          {"max_units", o.swap.max_units},
          {"min_units", o.swap.min_units},
          {"accept", o.swap.accept == sci::SwapAccept::kStrict ? "strict" : "nonworse"},
          {"cost", o.swap.cost == sci::SwapCost::kTwoRow ? "two_row" : "full_window"},
          {"seed", o.swap.seed},
          {"pool_windows", o.pool.num_windows},
          {"pool_percentile", o.pool.percentile},
          {"pool_min_size", o.pool.min_size},
          {"pool_max_size", o.pool.max_size}};
}

void ReportLayer(JobReporter& rep, const LayerTask& t, int64_t step) {
  const sci::SwapOptResult& r = t.result;
  rep.Metrics(step, {{t.name + "/cost_before", r.mean_cost_before},
                     {t.name + "/cost_after", r.mean_cost_after},
                     {t.name + "/eval_cost_before", t.eval_before},
                     {t.name + "/eval_cost_after", t.eval_after},
                     {t.name + "/accepted_fraction",
                      r.swaps_attempted ? double(r.swaps_accepted) / r.swaps_attempted : 0.0}});
  char line[256];
  std::snprintf(line, sizeof(line),
                "swapopt: layer=%s units=%lld width_mm=%.4g windows_used=%lld accepted=%lld/%lld "
                "cost %.4f -> %.4f (eval %.4f -> %.4f) seconds=%.1f",
                t.name.c_str(), static_cast<long long>(t.responses.size(1)), t.width_mm,
                static_cast<long long>(r.windows_used), static_cast<long long>(r.swaps_accepted),
                static_cast<long long>(r.swaps_attempted), r.mean_cost_before, r.mean_cost_after,
                t.eval_before, t.eval_after, t.seconds);
  rep.Log(line);
}

class SwapoptJob : public Job {
 public:
  absl::Status Run(JobContext& ctx) override {
    absl::StatusOr<Options> o = ParseOptions(ctx.spec);
    if (!o.ok()) return o.status();
    const int threads = ctx.threads > 0
                            ? ctx.threads
                            : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    std::error_code ec;
    fs::create_directories(ctx.out_dir, ec);
    if (!o->responses_path.empty()) return RunStandalone(ctx, *o, threads);
    return RunPipeline(ctx, *o, threads);
  }

 private:
  absl::Status RunStandalone(JobContext& ctx, const Options& o, int threads) {
    JobReporter& rep = *ctx.reporter;
    if (!(o.swap.width_mm > 0)) {
      return absl::InvalidArgumentError(
          "swapopt.width_mm: required (> 0) with inputs.responses/positions");
    }
    auto resp = ReadNpyChecked(o.responses_path, "inputs.responses");
    if (!resp.ok()) return resp.status();
    auto pos = ReadNpyChecked(o.positions_path, "inputs.positions");
    if (!pos.ok()) return pos.status();
    if (resp->dim() != 2 || resp->size(0) < 2) {
      return absl::InvalidArgumentError("inputs.responses: " + o.responses_path +
                                        " must be 2-d [images >= 2, units]");
    }
    if (pos->dim() != 2 || pos->size(1) != 2 || pos->size(0) != resp->size(1)) {
      return absl::InvalidArgumentError("inputs.positions: " + o.positions_path + " must be [" +
                                        std::to_string(resp->size(1)) + ", 2] (units of responses)");
    }
    if (!at::isFloatingType(resp->scalar_type()) || !at::isFloatingType(pos->scalar_type())) {
      return absl::InvalidArgumentError("inputs: responses and positions must be float arrays");
    }
    std::vector<LayerTask> tasks(1);
    tasks[0].name = "input";
    tasks[0].responses = resp->to(at::kFloat).contiguous();
    tasks[0].initial = pos->to(at::kFloat).contiguous();
    tasks[0].width_mm = o.swap.width_mm;
    tasks[0].seed = o.swap.seed;
    rep.Log("swapopt: standalone units=" + std::to_string(resp->size(1)) +
            " images=" + std::to_string(resp->size(0)) + " threads=" + std::to_string(threads));
    if (auto s = OptimiseAll(tasks, o, threads, rep); !s.ok()) return s;
    const LayerTask& t = tasks[0];
    sci::WriteNpy((ctx.out_dir / "positions.npy").string(), t.result.positions);
    rep.ArtifactReady("positions.npy");
    sci::WriteNpy((ctx.out_dir / "neighborhoods.npy").string(), t.pool);
    rep.ArtifactReady("neighborhoods.npy");
    ReportLayer(rep, t, 0);
    Json metrics = {{"mode", "standalone"},
                    {"settings", Settings(o)},
                    {"layers", {{"input", LayerMetrics(t, o)}}}};
    if (auto s = WriteJson(ctx.out_dir / "metrics.json", metrics); !s.ok()) return s;
    rep.ArtifactReady("metrics.json");
    return absl::OkStatus();
  }

  absl::Status RunPipeline(JobContext& ctx, Options o, int threads) {
    JobReporter& rep = *ctx.reporter;
    if (o.checkpoint_from.empty()) {
      const Json needs = ctx.spec.value("needs", Json::array());
      if (!needs.is_array() || needs.empty()) {
        return absl::InvalidArgumentError(
            "swapopt: needs a checkpoint (needs: [<train stage>] or swapopt.checkpoint_from) or "
            "standalone inputs (inputs.responses + inputs.positions)");
      }
      o.checkpoint_from = needs[0].get<std::string>();
    }
    auto ckpt = FindCheckpoint(ctx.inputs_dir, o.checkpoint_from);
    if (!ckpt.ok()) return ckpt.status();
    auto info = sci::ReadCheckpointInfo(ckpt->string());
    if (!info.ok()) return info.status();
    const Json& meta = info->meta;
    Json model_spec = meta.value("model", ctx.spec.value("model", Json::object()));
    const int64_t num_classes = meta.value("num_classes", static_cast<int64_t>(10));
    auto model = sci::MakeModel(model_spec, num_classes);
    if (!model.ok()) return model.status();
    auto loaded = sci::LoadCheckpoint(ckpt->string(), **model, nullptr, ctx.device);
    if (!loaded.ok()) return loaded.status();
    sci::VisionModel& net = **model;
    net.to(at::Device(ctx.device));
    net.eval();
    const Json data_spec = meta.value("data", ctx.spec.value("data", Json::object()));
    int64_t image_size = o.image_size;
    if (image_size <= 0) {
      image_size = meta.value("image_size", data_spec.is_object()
                                                ? data_spec.value("image_size", int64_t{32})
                                                : int64_t{32});
    }
    const std::vector<std::string>& names = net.LayerNames();
    std::vector<std::string> layers = o.layers.empty() ? names : o.layers;
    std::vector<int> layer_idx;
    for (const std::string& l : layers) {
      auto it = std::find(names.begin(), names.end(), l);
      if (it == names.end()) {
        return absl::InvalidArgumentError("swapopt.layers: unknown layer \"" + l + "\" of " +
                                          net.family());
      }
      layer_idx.push_back(static_cast<int>(it - names.begin()));
    }
    rep.Log("swapopt: checkpoint=" + ckpt->string() + " family=" + net.family() +
            " image_size=" + std::to_string(image_size) + " layers=" +
            std::to_string(layers.size()) + " threads=" + std::to_string(threads));

    // Responses to the 640 gratings, per layer, flattened C-major.
    sci::GratingOptions gopt;
    gopt.image_size = image_size;
    sci::GratingSet gratings(gopt);
    std::vector<std::vector<at::Tensor>> parts(layers.size());
    std::vector<std::vector<int64_t>> shapes(layers.size());
    {
      at::NoGradGuard no_grad;
      const at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, at::kFloat).view({1, 3, 1, 1});
      const at::Tensor stdv = at::tensor({0.229, 0.224, 0.225}, at::kFloat).view({1, 3, 1, 1});
      for (int64_t start = 0; start < gratings.size(); start += o.batch_size) {
        if (rep.CancelRequested()) return absl::CancelledError("swapopt cancelled");
        const int64_t n = std::min(o.batch_size, gratings.size() - start);
        at::Tensor x = gratings.Images(start, n);
        if (o.normalize == "imagenet") x = (x - mean) / stdv;
        sci::ModelOutput out = net.Forward(x.to(at::Device(ctx.device)));
        for (size_t k = 0; k < layers.size(); ++k) {
          const at::Tensor& y = out.layers[layer_idx[k]];
          if (shapes[k].empty()) shapes[k].assign(y.sizes().begin() + 1, y.sizes().end());
          parts[k].push_back(y.flatten(1).to(at::kCPU, at::kFloat));
        }
      }
    }
    std::vector<LayerTask> tasks(layers.size());
    for (size_t k = 0; k < layers.size(); ++k) {
      LayerTask& t = tasks[k];
      t.name = layers[k];
      t.responses = at::cat(parts[k], 0).contiguous();
      parts[k].clear();
      t.seed = o.swap.seed + 1000003ULL * (layer_idx[k] + 1);
      const int64_t units = t.responses.size(1);
      // The layer's sheet: its side and hypercolumn width are needed for the
      // default window width even when positions come from another stage.
      const auto& shp = shapes[k];
      const bool square = shp.size() == 3 && shp[1] == shp[2];
      absl::StatusOr<sci::CorticalSheet> sheet = absl::NotFoundError("not a square map");
      if (square) {
        sci::LayerSheetSpec ls{t.name, shp[0], shp[1], o.scale, 0};
        sheet = sci::BuildLayerSheet(ls, o.jitter_mm, t.seed ^ 0x5eedULL);
        if (absl::IsNotFound(sheet.status())) {
          // Layers outside the TDANN table (other families): 1 mm per location.
          ls.side_mm = static_cast<double>(shp[1]);
          sheet = sci::BuildLayerSheet(ls, o.jitter_mm, t.seed ^ 0x5eedULL);
        }
        if (!sheet.ok()) return sheet.status();
      }
      if (!o.positions_from.empty()) {
        const fs::path p = ctx.inputs_dir / o.positions_from / "positions" / (t.name + ".npy");
        auto pos = ReadNpyChecked(p, "swapopt.positions_from");
        if (!pos.ok()) return pos.status();
        if (pos->dim() != 2 || pos->size(1) != 2 || pos->size(0) != units) {
          return absl::InvalidArgumentError("swapopt.positions_from: " + p.string() + " is not [" +
                                            std::to_string(units) + ", 2] for layer " + t.name);
        }
        t.initial = pos->to(at::kFloat).contiguous();
      } else {
        if (!sheet.ok()) {
          return absl::InvalidArgumentError("swapopt: layer " + t.name +
                                            " is not a square C x N x N map; give positions_from");
        }
        t.initial = sheet->positions;
        t.side_mm = sheet->side_mm;
      }
      t.width_mm = o.swap.width_mm > 0 ? o.swap.width_mm
                                       : (sheet.ok() ? sheet->hypercolumn_width_mm : 0.0);
      if (!(t.width_mm > 0)) {
        return absl::InvalidArgumentError("swapopt.width_mm: required for layer " + t.name +
                                          " (not a square map)");
      }
      fs::create_directories(ctx.out_dir / "positions_initial");
      const std::string rel = "positions_initial/" + t.name + ".npy";
      sci::WriteNpy((ctx.out_dir / rel).string(), t.initial);
      rep.ArtifactReady(rel);
    }
    if (auto s = OptimiseAll(tasks, o, threads, rep); !s.ok()) return s;
    fs::create_directories(ctx.out_dir / "positions");
    fs::create_directories(ctx.out_dir / "neighborhoods");
    Json per_layer = Json::object();
    for (size_t k = 0; k < tasks.size(); ++k) {
      const LayerTask& t = tasks[k];
      const std::string pos_rel = "positions/" + t.name + ".npy";
      const std::string nb_rel = "neighborhoods/" + t.name + ".npy";
      sci::WriteNpy((ctx.out_dir / pos_rel).string(), t.result.positions);
      rep.ArtifactReady(pos_rel);
      sci::WriteNpy((ctx.out_dir / nb_rel).string(), t.pool);
      rep.ArtifactReady(nb_rel);
      per_layer[t.name] = LayerMetrics(t, o);
      per_layer[t.name]["shape"] = shapes[k];
      ReportLayer(rep, t, static_cast<int64_t>(k));
    }
    Json metrics = {{"mode", "pipeline"},
                    {"checkpoint", ckpt->string()},
                    {"checkpoint_from", o.checkpoint_from},
                    {"positions_from", o.positions_from},
                    {"image_size", image_size},
                    {"stimuli", "sine_gratings"},
                    {"scale", o.scale == sci::SheetScale::kHuman ? "human" : "train"},
                    {"settings", Settings(o)},
                    {"layers", per_layer}};
    if (auto s = WriteJson(ctx.out_dir / "metrics.json", metrics); !s.ok()) return s;
    rep.ArtifactReady("metrics.json");
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Job> MakeSwapoptJob() { return std::make_unique<SwapoptJob>(); }

}  // namespace topolab::worker
