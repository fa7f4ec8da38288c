// SimCLR objective and TDANN spatial loss term for the train job.
#include "worker/jobs/train/tdann_terms.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/status/status.h"
#include "worker/science/io/npy.h"
#include "worker/science/ssl/augment.h"
#include "worker/science/ssl/ntxent.h"
#include "worker/science/tdann/sheet.h"
#include "worker/science/tdann/spatial_loss.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

class SimClrObjective : public TrainObjective {
 public:
  explicit SimClrObjective(sci::NtXentOptions ntxent) : ntxent_(ntxent) {}
  std::string name() const override { return "simclr"; }

  StepLoss Compute(sci::VisionModel& model, const StepBatch& batch) override {
    TORCH_CHECK(model.has_projection_head(),
                "objective simclr: model family '", model.family(),
                "' has no projection head (set model.projection_dim > 0)");
    const int64_t b = batch.images.size(0);
    at::Generator gen = batch.generator != nullptr
                            ? *batch.generator
                            : at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(batch.step));
    // Both views in one forward pass: BatchNorm sees all 2B views (as in
    // SimCLR) and the spatial loss reads every row.
    at::Tensor views = at::cat({sci::SimClrAugment(batch.images, augment_, gen),
                                sci::SimClrAugment(batch.images, augment_, gen)},
                               0);
    StepLoss result;
    result.output = model.Forward(NormalizeImageNet(views));
    at::Tensor z = model.Project(result.output.features);
    result.loss = sci::NtXentLoss(z.narrow(0, 0, b), z.narrow(0, b, b), ntxent_);
    result.scalars["task_loss"] = result.loss.detach().item<double>();
    return result;
  }

 private:
  sci::NtXentOptions ntxent_;
  sci::SimClrAugmentOptions augment_;
};

struct SpatialLayer {
  std::string name;
  int index = -1;          // into ModelOutput::layers
  double weight = 0;       // α for this layer
  at::Tensor positions;    // [U, 2] float32 on the output's device
  at::Tensor pool;         // [P, K] int64 (CPU)
};

class SpatialLossTerm : public LossTerm {
 public:
  SpatialLossTerm(std::vector<SpatialLayer> layers, sci::SpatialLossOptions loss, int64_t per_step,
                  std::string positions_from, sci::SheetScale scale, double jitter_mm,
                  int64_t pool_windows, uint64_t seed, const JobContext& context)
      : layers_(std::move(layers)),
        loss_(loss),
        per_step_(per_step),
        positions_from_(std::move(positions_from)),
        scale_(scale),
        jitter_mm_(jitter_mm),
        pool_windows_(pool_windows),
        seed_(seed),
        gen_(at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5a7ULL)),
        context_(context) {}

  std::string name() const override { return "spatial"; }

  at::Tensor Compute(const sci::ModelOutput& output, std::map<std::string, double>* scalars) override {
    if (!initialised_) Initialise(output);
    at::Tensor total;
    for (const SpatialLayer& l : layers_) {
      const at::Tensor& y = output.layers[l.index];
      at::Tensor sl = sci::LayerSpatialLoss(y, l.positions, l.pool, per_step_, gen_, loss_);
      (*scalars)["spatial_loss/" + l.name] = sl.detach().item<double>();
      at::Tensor weighted = sl * l.weight;
      total = total.defined() ? total + weighted : weighted;
    }
    (*scalars)["spatial_loss"] = total.detach().item<double>();
    return total;
  }

 private:
  // First step: the layer shapes are known now. Load or build positions and
  // pools, check them against the layer, and publish them as artifacts.
  void Initialise(const sci::ModelOutput& output) {
    for (size_t k = 0; k < layers_.size(); ++k) {
      SpatialLayer& l = layers_[k];
      const at::Tensor& y = output.layers[l.index];
      const int64_t units = y[0].numel();
      at::Tensor pos;
      double width = 0;
      const bool square = y.dim() == 4 && y.size(2) == y.size(3);
      if (square) {
        sci::LayerSheetSpec spec{l.name, y.size(1), y.size(2), scale_, 0};
        auto sheet = sci::BuildLayerSheet(spec, jitter_mm_, seed_ + 7919 * (k + 1));
        if (!sheet.ok() && absl::IsNotFound(sheet.status())) {
          spec.side_mm = static_cast<double>(y.size(2));  // other families: 1 mm per location
          sheet = sci::BuildLayerSheet(spec, jitter_mm_, seed_ + 7919 * (k + 1));
        }
        TORCH_CHECK(sheet.ok(), "spatial loss, layer ", l.name, ": ", sheet.status().ToString());
        width = sheet->hypercolumn_width_mm;
        pos = sheet->positions;
      }
      if (!positions_from_.empty()) {
        const fs::path dir = context_.inputs_dir / positions_from_;
        pos = sci::ReadNpy((dir / "positions" / (l.name + ".npy")).string()).to(at::kFloat);
        TORCH_CHECK(pos.dim() == 2 && pos.size(1) == 2 && pos.size(0) == units,
                    "positions_from: ", (dir / "positions" / (l.name + ".npy")).string(),
                    " is not [", units, ", 2] for layer ", l.name);
        const fs::path nb = dir / "neighborhoods" / (l.name + ".npy");
        std::error_code ec;
        if (fs::is_regular_file(nb, ec)) {
          at::Tensor pool = sci::ReadNpy(nb.string()).to(at::kLong);
          TORCH_CHECK(pool.dim() == 2 && pool.size(0) > 0 && pool.size(1) >= 2 &&
                          pool.min().item<int64_t>() >= 0 && pool.max().item<int64_t>() < units,
                      "positions_from: ", nb.string(), " is not a pool of unit indices < ", units);
          l.pool = pool;
        }
      }
      TORCH_CHECK(pos.defined(), "spatial loss, layer ", l.name,
                  " is not a square C x N x N map; give positions_from");
      if (!l.pool.defined()) {
        TORCH_CHECK(width > 0, "spatial loss, layer ", l.name, ": unknown neighbourhood width");
        sci::NeighborhoodPoolOptions po;
        po.num_windows = pool_windows_;
        po.seed = seed_ + 104729 * (k + 1);
        l.pool = sci::BuildNeighborhoodPool(pos, width, po);
        TORCH_CHECK(l.pool.size(0) > 0 && l.pool.size(1) >= 2, "spatial loss, layer ", l.name,
                    ": no neighbourhood window holds enough units (", l.pool.size(1), ")");
      }
      // Publish what this run trains with.
      fs::create_directories(context_.out_dir / "positions");
      fs::create_directories(context_.out_dir / "neighborhoods");
      const std::string pos_rel = "positions/" + l.name + ".npy";
      const std::string nb_rel = "neighborhoods/" + l.name + ".npy";
      sci::WriteNpy((context_.out_dir / pos_rel).string(), pos);
      sci::WriteNpy((context_.out_dir / nb_rel).string(), l.pool);
      if (context_.reporter != nullptr) {
        context_.reporter->ArtifactReady(pos_rel);
        context_.reporter->ArtifactReady(nb_rel);
        context_.reporter->Log("spatial: layer=" + l.name + " units=" + std::to_string(units) +
                               " weight=" + std::to_string(l.weight) +
                               " pool=" + std::to_string(l.pool.size(0)) + "x" +
                               std::to_string(l.pool.size(1)) + " positions=" +
                               (positions_from_.empty() ? "fresh_sheet" : positions_from_));
      }
      l.positions = pos.to(y.device());
    }
    initialised_ = true;
  }

  std::vector<SpatialLayer> layers_;
  sci::SpatialLossOptions loss_;
  int64_t per_step_;
  std::string positions_from_;
  sci::SheetScale scale_;
  double jitter_mm_;
  int64_t pool_windows_;
  uint64_t seed_;
  at::Generator gen_;
  const JobContext& context_;
  bool initialised_ = false;
};

template <typename T>
absl::Status Get(const Json& obj, const std::string& path, const std::string& key, T* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  try {
    *out = obj[key].get<T>();
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(path + key + ": wrong type");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrainObjective>> MakeSimClrObjective(const Json& job_spec) {
  sci::NtXentOptions nt;
  const Json s = job_spec.value("simclr", Json::object());
  if (auto st = Get(s, "simclr.", "temperature", &nt.temperature); !st.ok()) return st;
  if (!(nt.temperature > 0)) return absl::InvalidArgumentError("simclr.temperature: must be > 0");
  return std::unique_ptr<TrainObjective>(std::make_unique<SimClrObjective>(nt));
}

absl::StatusOr<std::unique_ptr<LossTerm>> MakeSpatialLossTerm(const Json& job_spec,
                                                              const sci::VisionModel& model,
                                                              const JobContext& context) {
  double alpha = 0;
  if (auto st = Get(job_spec, "", "spatial_weight", &alpha); !st.ok()) return st;
  if (alpha < 0) return absl::InvalidArgumentError("spatial_weight: must be >= 0");
  const Json sp = job_spec.value("spatial", Json::object());
  std::string loss = "rel", form = "half", scale = "human", positions_from;
  int64_t per_step = 1, pool_windows = 20000;
  double jitter = 0.3;
  std::vector<std::string> names;
  std::map<std::string, double> layer_weights;
  for (absl::Status st : {Get(sp, "spatial.", "loss", &loss), Get(sp, "spatial.", "rel_form", &form),
                          Get(sp, "spatial.", "neighborhoods_per_step", &per_step),
                          Get(sp, "spatial.", "layers", &names),
                          Get(sp, "spatial.", "layer_weights", &layer_weights),
                          Get(sp, "spatial.", "scale", &scale),
                          Get(sp, "spatial.", "jitter_mm", &jitter),
                          Get(sp, "spatial.", "pool_windows", &pool_windows),
                          Get(job_spec, "", "positions_from", &positions_from)}) {
    if (!st.ok()) return st;
  }
  bool any = alpha > 0;
  for (const auto& [layer, w] : layer_weights) {
    if (w < 0) return absl::InvalidArgumentError("spatial.layer_weights." + layer + ": must be >= 0");
    any = any || w > 0;
  }
  if (!any) return std::unique_ptr<LossTerm>();
  sci::SpatialLossOptions lo;
  auto type = sci::ParseSpatialLossType(loss);
  if (!type.ok()) return absl::InvalidArgumentError("spatial.loss: must be rel or abs");
  auto rf = sci::ParseRelativeForm(form);
  if (!rf.ok()) return absl::InvalidArgumentError("spatial.rel_form: must be half or full");
  auto sc = sci::ParseSheetScale(scale);
  if (!sc.ok()) return absl::InvalidArgumentError("spatial.scale: must be human or train");
  lo.type = *type;
  lo.rel_form = *rf;
  if (per_step < 1) return absl::InvalidArgumentError("spatial.neighborhoods_per_step: must be >= 1");
  if (pool_windows < 1) return absl::InvalidArgumentError("spatial.pool_windows: must be >= 1");
  const std::vector<std::string>& all = model.LayerNames();
  if (names.empty()) names = all;
  for (const auto& [layer, w] : layer_weights) {
    if (std::find(names.begin(), names.end(), layer) == names.end()) {
      return absl::InvalidArgumentError("spatial.layer_weights: layer \"" + layer +
                                        "\" is not a spatial layer");
    }
  }
  std::vector<SpatialLayer> layers;
  for (const std::string& n : names) {
    auto it = std::find(all.begin(), all.end(), n);
    if (it == all.end()) {
      return absl::InvalidArgumentError("spatial.layers: unknown layer \"" + n + "\" of " +
                                        model.family());
    }
    SpatialLayer l;
    l.name = n;
    l.index = static_cast<int>(it - all.begin());
    auto w = layer_weights.find(n);
    l.weight = w != layer_weights.end() ? w->second : alpha;
    if (l.weight <= 0) continue;
    if (!positions_from.empty()) {
      const fs::path p = context.inputs_dir / positions_from / "positions" / (n + ".npy");
      std::error_code ec;
      if (!fs::is_regular_file(p, ec)) {
        return absl::NotFoundError("positions_from: missing " + p.string());
      }
    }
    layers.push_back(std::move(l));
  }
  const uint64_t seed = job_spec.value("seed", static_cast<uint64_t>(0));
  return std::unique_ptr<LossTerm>(std::make_unique<SpatialLossTerm>(
      std::move(layers), lo, per_step, positions_from, *sc, jitter, pool_windows, seed, context));
}

}  // namespace topolab::worker
