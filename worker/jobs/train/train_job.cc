// The train loop: data order, LR schedule, metrics, checkpoints and resume.
// The loss itself lives in objective.{h,cc}.
#include "worker/jobs/train/train_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>
#include <system_error>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/jobs/train/objective.h"
#include "worker/science/data/dataset.h"
#include "worker/science/models/checkpoint.h"
#include "worker/science/models/model_factory.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;

constexpr double kPi = 3.14159265358979323846;

absl::Status KeyError(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
}

// splitmix64: decorrelates (seed, stream, counter) into generator seeds.
uint64_t Mix(uint64_t seed, uint64_t stream, uint64_t counter) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream * 0x100000001b3ULL + counter + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr uint64_t kStreamDataOrder = 1;
constexpr uint64_t kStreamStep = 2;
constexpr uint64_t kStreamGlobal = 3;

std::string StepCheckpointName(int64_t step) {
  return absl::StrFormat("checkpoints/step_%07d.pt", step);
}

// Normalisation layers (BatchNorm, LayerNorm, GroupNorm) get no weight decay
// unless weight_decay_bn is set (OFFICIAL TDANN config: not applied to BN).
bool IsNormLayer(const torch::nn::Module& m) { return m.name().find("Norm") != std::string::npos; }

// Names an optimizer class for MakeOptimizer's generic builder.
template <typename T>
struct TypeTag {
  using type = T;
};

// The run's fixed context, computed once.
struct RunSetup {
  TrainOptions options;
  c10::Device device = c10::Device("cpu");
  std::unique_ptr<sci::ImageDataset> train;
  std::unique_ptr<sci::ImageDataset> test;
  std::shared_ptr<sci::VisionModel> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<TrainObjective> objective;
  std::vector<std::unique_ptr<LossTerm>> terms;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
};

class TrainJob : public Job {
 public:
  absl::Status Run(JobContext& ctx) override;

 private:
  absl::Status Setup(JobContext& ctx, RunSetup* run);
  nlohmann::json Meta(const JobContext& ctx, const RunSetup& run, int64_t step) const;
  absl::Status WriteCheckpoint(JobContext& ctx, const RunSetup& run, const std::string& name, int64_t step,
                               bool with_optimizer);
  // Test-set loss/accuracy on up to eval_batches batches (in dataset order).
  nlohmann::json Evaluate(RunSetup& run);

  nlohmann::json history_ = nlohmann::json::array();
};

absl::Status TrainJob::Setup(JobContext& ctx, RunSetup* run) {
  absl::StatusOr<TrainOptions> options = ParseTrainOptions(ctx.spec);
  if (!options.ok()) return options.status();
  run->options = *options;
  const TrainOptions& o = run->options;

  const int threads = ctx.threads > 0 ? ctx.threads : std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(threads);

  try {
    run->device = c10::Device(ctx.device);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("device: cannot parse '", ctx.device, "'"));
  }
  if (run->device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device ", ctx.device, " requested but this LibTorch build sees no CUDA device"));
    }
    if (run->device.has_index() && run->device.index() >= static_cast<int>(torch::cuda::device_count())) {
      return absl::FailedPreconditionError(absl::StrCat("device ", ctx.device, " does not exist (",
                                                        torch::cuda::device_count(), " CUDA devices)"));
    }
  } else if (!run->device.is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("device: '", ctx.device, "' is neither cpu nor cuda:N"));
  }

  const nlohmann::json data_spec = ctx.spec.value("data", nlohmann::json::object());
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> train = sci::OpenDataset(data_spec, "train");
  if (!train.ok()) return train.status();
  run->train = std::move(*train);
  if (o.eval_batches > 0) {
    absl::StatusOr<std::unique_ptr<sci::ImageDataset>> test = sci::OpenDataset(data_spec, "test");
    if (!test.ok()) return test.status();
    run->test = std::move(*test);
  }
  if (run->train->size() == 0) return absl::InvalidArgumentError("data: the train split is empty");
  run->steps_per_epoch = std::max<int64_t>(1, run->train->size() / o.batch_size);
  run->total_steps = o.epochs * run->steps_per_epoch;
  if (o.max_steps > 0) run->total_steps = std::min(run->total_steps, o.max_steps);

  // Weights depend only on the seed (and family), never on the device.
  torch::manual_seed(o.seed);
  absl::StatusOr<std::shared_ptr<sci::VisionModel>> model =
      sci::MakeModel(ctx.spec.value("model", nlohmann::json::object()),
                     static_cast<int64_t>(run->train->class_names().size()));
  if (!model.ok()) return model.status();
  run->model = std::move(*model);
  run->model->to(run->device);

  run->optimizer = MakeOptimizer(o, *run->model);

  absl::StatusOr<std::unique_ptr<TrainObjective>> objective = MakeObjective(o, ctx.spec);
  if (!objective.ok()) return objective.status();
  run->objective = std::move(*objective);
  absl::StatusOr<std::vector<std::unique_ptr<LossTerm>>> terms = MakeLossTerms(ctx.spec, *run->model, ctx);
  if (!terms.ok()) return terms.status();
  run->terms = std::move(*terms);
  return absl::OkStatus();
}

nlohmann::json TrainJob::Meta(const JobContext& ctx, const RunSetup& run, int64_t step) const {
  nlohmann::json meta;
  meta["kind"] = "train";
  meta["job_id"] = ctx.job_id;
  meta["family"] = run.model->family();
  meta["model"] = ctx.spec.value("model", nlohmann::json::object());
  meta["data"] = ctx.spec.value("data", nlohmann::json::object());
  meta["seed"] = run.options.seed;
  meta["objective"] = run.options.objective;
  meta["class_names"] = run.train->class_names();
  meta["num_classes"] = run.model->num_classes();
  meta["image_size"] = run.train->image_size();
  meta["layer_names"] = run.model->LayerNames();
  meta["steps_per_epoch"] = run.steps_per_epoch;
  meta["total_steps"] = run.total_steps;
  meta["epoch"] = static_cast<double>(step) / static_cast<double>(run.steps_per_epoch);
  meta["history"] = history_;
  return meta;
}

absl::Status TrainJob::WriteCheckpoint(JobContext& ctx, const RunSetup& run, const std::string& name, int64_t step,
                                       bool with_optimizer) {
  absl::Status s = sci::SaveCheckpoint((ctx.out_dir / name).string(), *run.model,
                                       with_optimizer ? run.optimizer.get() : nullptr, step, Meta(ctx, run, step));
  if (!s.ok()) return s;
  ctx.reporter->ArtifactReady(name);
  return absl::OkStatus();
}

nlohmann::json TrainJob::Evaluate(RunSetup& run) {
  nlohmann::json result = nlohmann::json::object();
  if (!run.test || run.options.eval_batches <= 0 || run.test->size() == 0) return result;
  const int64_t bs = run.options.eval_batch_size > 0 ? run.options.eval_batch_size : run.options.batch_size;
  const int64_t n = std::min(run.test->size(), bs * run.options.eval_batches);
  torch::NoGradGuard no_grad;
  run.model->eval();
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (int64_t start = 0; start < n; start += bs) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + bs); ++i) idx.push_back(i);
    auto [images, labels] = run.test->GetBatch(idx);
    images = images.to(run.device);
    labels = labels.to(run.device);
    sci::ModelOutput out = run.model->Forward(NormalizeImageNet(images));
    if (!out.logits.defined()) return result;
    loss_sum += at::cross_entropy_loss(out.logits, labels, {}, at::Reduction::Sum).item<double>();
    correct += out.logits.argmax(1).eq(labels).sum().item<int64_t>();
  }
  run.model->train();
  result["test_loss"] = loss_sum / static_cast<double>(n);
  result["test_accuracy"] = static_cast<double>(correct) / static_cast<double>(n);
  result["test_images"] = n;
  return result;
}

absl::Status TrainJob::Run(JobContext& ctx) {
  if (ctx.reporter == nullptr) return absl::InvalidArgumentError("train: JobContext.reporter is null");
  RunSetup run;
  absl::Status s = Setup(ctx, &run);
  if (!s.ok()) return s;
  const TrainOptions& o = run.options;
  JobReporter& rep = *ctx.reporter;

  int64_t step = 0;
  if (!ctx.resume_dir.empty()) {
    for (const fs::path& candidate : ListCheckpointsNewestFirst(ctx.resume_dir / "checkpoints")) {
      absl::StatusOr<sci::CheckpointInfo> info = sci::ReadCheckpointInfo(candidate.string());
      // final.pt carries no optimizer state; nothing is left to train then.
      absl::StatusOr<sci::CheckpointInfo> loaded =
          info.ok() ? sci::LoadCheckpoint(candidate.string(), *run.model,
                                          info->has_optimizer ? run.optimizer.get() : nullptr, ctx.device)
                    : info;
      if (!loaded.ok()) {
        rep.Log(absl::StrCat("skipping checkpoint ", candidate.filename().string(), ": ",
                             loaded.status().ToString()));
        continue;
      }
      step = std::min(loaded->step, run.total_steps);
      if (loaded->meta.contains("history") && loaded->meta["history"].is_array()) {
        history_ = loaded->meta["history"];
      }
      rep.Log(absl::StrCat("resumed from step ", step, " (", candidate.filename().string(), ")"));
      break;
    }
  }
  rep.Log(absl::StrFormat(
      "train: family=%s objective=%s device=%s threads=%d images=%d classes=%d image_size=%d batch_size=%d "
      "steps_per_epoch=%d total_steps=%d",
      run.model->family(), o.objective, ctx.device, at::get_num_threads(), run.train->size(),
      run.train->class_names().size(), run.train->image_size(), o.batch_size, run.steps_per_epoch,
      run.total_steps));

  run.model->train();
  int64_t cached_epoch = -1;
  at::Tensor order;
  double window_loss = 0.0, window_acc = 0.0;
  std::map<std::string, double> window_scalars;
  int64_t window_steps = 0;
  int64_t window_images = 0;
  auto window_start = std::chrono::steady_clock::now();
  std::map<std::string, double> last_metrics;

  while (step < run.total_steps) {
    if (rep.CancelRequested()) {
      rep.Log(absl::StrCat("cancelled at step ", step));
      return absl::CancelledError(absl::StrCat("train cancelled at step ", step));
    }
    const int64_t epoch = step / run.steps_per_epoch;
    if (epoch != cached_epoch) {
      at::Generator gen = at::detail::createCPUGenerator(Mix(o.seed, kStreamDataOrder, epoch));
      order = at::randperm(run.train->size(), gen, at::TensorOptions().dtype(at::kLong));
      cached_epoch = epoch;
    }
    const int64_t pos = (step % run.steps_per_epoch) * o.batch_size;
    const int64_t* op = order.data_ptr<int64_t>();
    std::vector<int64_t> idx(op + pos, op + std::min(pos + o.batch_size, run.train->size()));

    // Every random draw of a step is a function of (seed, step), so a
    // resumed run repeats exactly what the uninterrupted one would do.
    at::Generator step_gen = at::detail::createCPUGenerator(Mix(o.seed, kStreamStep, step));
    torch::manual_seed(Mix(o.seed, kStreamGlobal, step));

    auto [images, labels] = run.train->GetBatch(idx);
    StepBatch batch;
    batch.images = images.to(run.device);
    batch.labels = labels.to(run.device);
    batch.step = step;
    batch.generator = &step_gen;

    const double lr = LearningRateAt(o, step, run.total_steps, run.steps_per_epoch);
    for (auto& group : run.optimizer->param_groups()) group.options().set_lr(lr);
    run.optimizer->zero_grad();
    StepLoss r = run.objective->Compute(*run.model, batch);
    at::Tensor loss = r.loss;
    for (auto& term : run.terms) loss = loss + term->Compute(r.output, &r.scalars);
    if (at::Tensor aux = run.model->AuxiliaryLoss(); aux.defined()) {
      r.scalars["aux_loss"] = aux.detach().item<double>();
      loss = loss + aux;
    }
    loss.backward();
    if (o.clip_grad_norm > 0) {
      std::vector<at::Tensor> params;
      for (const auto& group : run.optimizer->param_groups()) {
        params.insert(params.end(), group.params().begin(), group.params().end());
      }
      r.scalars["grad_norm"] = torch::nn::utils::clip_grad_norm_(params, o.clip_grad_norm);
    }
    run.optimizer->step();
    ++step;

    const double loss_value = loss.detach().item<double>();
    if (!std::isfinite(loss_value)) {
      return absl::InternalError(absl::StrCat("train: loss became ", loss_value, " at step ", step,
                                              " (lower lr?)"));
    }
    window_loss += loss_value;
    window_acc += r.scalars.count("accuracy") ? r.scalars["accuracy"] : 0.0;
    for (const auto& [k, v] : r.scalars) {
      if (k != "accuracy") window_scalars[k] += v;
    }
    ++window_steps;
    window_images += static_cast<int64_t>(idx.size());

    if (step % o.log_every == 0 || step == run.total_steps) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      std::map<std::string, double> m;
      m["loss"] = window_loss / window_steps;
      if (r.scalars.count("accuracy")) m["accuracy"] = window_acc / window_steps;
      for (const auto& [k, v] : window_scalars) m[k] = v / window_steps;
      m["lr"] = lr;
      m["epoch"] = static_cast<double>(step) / static_cast<double>(run.steps_per_epoch);
      m["img_per_s"] = secs > 0 ? static_cast<double>(window_images) / secs : 0.0;
      rep.Metrics(step, m);
      rep.Progress(static_cast<double>(step) / static_cast<double>(run.total_steps));
      std::string line = absl::StrCat("step=", step, "/", run.total_steps);
      for (const auto& [k, v] : m) absl::StrAppend(&line, " ", k, "=", absl::StrFormat("%.6g", v));
      rep.Log(line);
      nlohmann::json h = m;
      h["step"] = step;
      history_.push_back(h);
      last_metrics = m;
      window_loss = window_acc = 0.0;
      window_scalars.clear();
      window_steps = 0;
      window_images = 0;
      window_start = std::chrono::steady_clock::now();
    }
    if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0 && step < run.total_steps) {
      s = WriteCheckpoint(ctx, run, StepCheckpointName(step), step, /*with_optimizer=*/true);
      if (!s.ok()) return s;
    }
  }

  s = WriteCheckpoint(ctx, run, "checkpoints/final.pt", step, /*with_optimizer=*/false);
  if (!s.ok()) return s;
  nlohmann::json test = Evaluate(run);
  nlohmann::json final_metrics = last_metrics.empty() && !history_.empty() ? history_.back() : nlohmann::json(last_metrics);
  final_metrics["step"] = step;
  for (auto it = test.begin(); it != test.end(); ++it) final_metrics[it.key()] = it.value();
  if (!test.empty()) {
    std::map<std::string, double> tm;
    for (auto it = test.begin(); it != test.end(); ++it) tm[it.key()] = it.value().get<double>();
    rep.Metrics(step, tm);
    rep.Log(absl::StrFormat("test: accuracy=%.4f loss=%.4f images=%d", tm["test_accuracy"], tm["test_loss"],
                            static_cast<int64_t>(tm["test_images"])));
  }
  nlohmann::json metrics;
  metrics["final"] = final_metrics;
  metrics["history"] = history_;
  metrics["test"] = test;
  metrics["class_names"] = run.train->class_names();
  metrics["total_steps"] = run.total_steps;
  metrics["steps_per_epoch"] = run.steps_per_epoch;
  {
    const fs::path path = ctx.out_dir / "metrics.json";
    std::ofstream out(path);
    out << metrics.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  }
  rep.ArtifactReady("metrics.json");
  rep.Progress(1.0);
  rep.Log(absl::StrCat("train done: step=", step, " checkpoint=checkpoints/final.pt"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainOptions> ParseTrainOptions(const nlohmann::json& spec) {
  TrainOptions o;
  if (!spec.is_object()) return absl::InvalidArgumentError("job spec: must be a mapping");
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json& opt = spec.contains("optimizer") ? spec["optimizer"] : kEmpty;
  if (!opt.is_object()) return KeyError("optimizer", "must be a mapping");
  // `section` is the object holding `key`; `prefix` its path for messages.
  auto has = [](const nlohmann::json& section, const char* key) {
    return section.contains(key) && !section[key].is_null();
  };
  auto get_int = [&](const nlohmann::json& section, const std::string& prefix, const char* key, int64_t lo,
                     int64_t* out) -> absl::Status {
    if (!has(section, key)) return absl::OkStatus();
    const auto& v = section[key];
    const bool integral = v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    if (!integral || v.get<double>() < static_cast<double>(lo)) {
      return KeyError(prefix + key, lo > 0 ? "must be a positive integer" : "must be a non-negative integer");
    }
    *out = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
    return absl::OkStatus();
  };
  auto get_double = [&](const nlohmann::json& section, const std::string& prefix, const char* key,
                        double* out) -> absl::Status {
    if (!has(section, key)) return absl::OkStatus();
    if (!section[key].is_number() || !std::isfinite(section[key].get<double>()) || section[key].get<double>() < 0) {
      return KeyError(prefix + key, "must be a non-negative number");
    }
    *out = section[key].get<double>();
    return absl::OkStatus();
  };
  auto get_bool = [&](const nlohmann::json& section, const std::string& prefix, const char* key,
                      bool* out) -> absl::Status {
    if (!has(section, key)) return absl::OkStatus();
    if (!section[key].is_boolean()) return KeyError(prefix + key, "must be true or false");
    *out = section[key].get<bool>();
    return absl::OkStatus();
  };
  auto get_string = [&](const nlohmann::json& section, const std::string& prefix, const char* key,
                        std::string* out) -> absl::Status {
    if (!has(section, key)) return absl::OkStatus();
    if (!section[key].is_string()) return KeyError(prefix + key, "must be a string");
    *out = section[key].get<std::string>();
    return absl::OkStatus();
  };
  const std::string top, op = "optimizer.";
  absl::Status s;
  if (s = get_string(spec, top, "objective", &o.objective); !s.ok()) return s;
  if (s = get_int(spec, top, "epochs", 1, &o.epochs); !s.ok()) return s;
  if (s = get_int(spec, top, "max_steps", 0, &o.max_steps); !s.ok()) return s;
  if (s = get_int(spec, top, "batch_size", 1, &o.batch_size); !s.ok()) return s;
  // A list of finite numbers in [lo, hi) (hi_open) or [lo, hi]; `size` 0 = any length.
  auto get_number_list = [&](const nlohmann::json& section, const std::string& prefix, const char* key,
                             size_t size, double lo, double hi, bool hi_open,
                             std::vector<double>* out) -> absl::Status {
    if (!has(section, key)) return absl::OkStatus();
    const auto& v = section[key];
    const std::string range = absl::StrCat("[", lo, ", ", hi, hi_open ? ")" : "]");
    if (!v.is_array() || (size > 0 && v.size() != size)) {
      return KeyError(prefix + key, absl::StrCat("must be a list of ", size > 0 ? absl::StrCat(size, " ") : "",
                                                 "numbers in ", range));
    }
    std::vector<double> values;
    for (size_t i = 0; i < v.size(); ++i) {
      const double x = v[i].is_number() ? v[i].get<double>() : std::nan("");
      if (!std::isfinite(x) || x < lo || (hi_open ? x >= hi : x > hi)) {
        return KeyError(absl::StrCat(prefix, key, "[", i, "]"), absl::StrCat("must be a number in ", range));
      }
      values.push_back(x);
    }
    *out = std::move(values);
    return absl::OkStatus();
  };
  if (s = get_string(opt, op, "name", &o.optimizer); !s.ok()) return s;
  if (o.optimizer != "sgd" && o.optimizer != "adam" && o.optimizer != "adamw") {
    return KeyError("optimizer.name", absl::StrCat("must be sgd, adam or adamw, got '", o.optimizer, "'"));
  }
  if (s = get_double(opt, op, "lr", &o.lr); !s.ok()) return s;
  if (s = get_double(opt, op, "momentum", &o.momentum); !s.ok()) return s;
  if (s = get_bool(opt, op, "nesterov", &o.nesterov); !s.ok()) return s;
  if (o.optimizer == "sgd" && o.nesterov && o.momentum <= 0) {
    return KeyError("optimizer.nesterov", "requires momentum > 0");
  }
  std::vector<double> betas = {o.beta1, o.beta2};
  if (s = get_number_list(opt, op, "betas", 2, 0.0, 1.0, /*hi_open=*/true, &betas); !s.ok()) return s;
  o.beta1 = betas[0];
  o.beta2 = betas[1];
  if (s = get_double(opt, op, "eps", &o.eps); !s.ok()) return s;
  if (o.eps <= 0) return KeyError("optimizer.eps", "must be a positive number");
  if (s = get_double(opt, op, "weight_decay", &o.weight_decay); !s.ok()) return s;
  if (s = get_bool(opt, op, "weight_decay_bn", &o.weight_decay_bn); !s.ok()) return s;
  if (s = get_double(opt, op, "clip_grad_norm", &o.clip_grad_norm); !s.ok()) return s;
  if (s = get_string(spec, top, "lr_schedule", &o.lr_schedule); !s.ok()) return s;
  if (o.lr_schedule != "cosine" && o.lr_schedule != "constant" && o.lr_schedule != "multistep") {
    return KeyError("lr_schedule",
                    absl::StrCat("must be cosine, constant or multistep, got '", o.lr_schedule, "'"));
  }
  if (s = get_number_list(spec, top, "lr_milestones", 0, 0.0, 1e6, /*hi_open=*/false, &o.lr_milestones);
      !s.ok()) {
    return s;
  }
  for (size_t i = 1; i < o.lr_milestones.size(); ++i) {
    if (o.lr_milestones[i] <= o.lr_milestones[i - 1]) {
      return KeyError(absl::StrCat("lr_milestones[", i, "]"), "must be greater than the item before it");
    }
  }
  if (s = get_double(spec, top, "lr_gamma", &o.lr_gamma); !s.ok()) return s;
  if (o.lr_gamma <= 0) return KeyError("lr_gamma", "must be a positive number");
  if (s = get_double(spec, top, "min_lr", &o.min_lr); !s.ok()) return s;
  if (s = get_int(spec, top, "warmup_steps", 0, &o.warmup_steps); !s.ok()) return s;
  if (s = get_bool(spec, top, "hflip", &o.hflip); !s.ok()) return s;
  if (s = get_int(spec, top, "log_every", 1, &o.log_every); !s.ok()) return s;
  if (s = get_int(spec, top, "checkpoint_every", 0, &o.checkpoint_every); !s.ok()) return s;
  if (s = get_int(spec, top, "eval_batches", 0, &o.eval_batches); !s.ok()) return s;
  if (s = get_int(spec, top, "eval_batch_size", 0, &o.eval_batch_size); !s.ok()) return s;
  int64_t seed = 0;
  if (s = get_int(spec, top, "seed", 0, &seed); !s.ok()) return s;
  o.seed = static_cast<uint64_t>(seed);
  return o;
}

int64_t MilestoneStep(double epochs, int64_t steps_per_epoch) {
  const double x = epochs * static_cast<double>(steps_per_epoch);
  const double nearest = std::round(x);
  if (std::fabs(x - nearest) <= 1e-9 * std::max(1.0, std::fabs(x))) return static_cast<int64_t>(nearest);
  return static_cast<int64_t>(std::ceil(x));
}

double LearningRateAt(const TrainOptions& o, int64_t step, int64_t total_steps, int64_t steps_per_epoch) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.lr_schedule == "constant") return o.lr;
  if (o.lr_schedule == "multistep") {
    double lr = o.lr;
    for (double m : o.lr_milestones) {
      if (step >= MilestoneStep(m, steps_per_epoch)) lr *= o.lr_gamma;
    }
    return lr;
  }
  const int64_t span = total_steps - o.warmup_steps;
  if (span <= 0) return o.lr;
  const double t = static_cast<double>(step - o.warmup_steps) / static_cast<double>(span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(kPi * std::clamp(t, 0.0, 1.0)));
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const TrainOptions& o, torch::nn::Module& model) {
  std::vector<at::Tensor> decayed, not_decayed;
  for (const auto& item : model.named_modules()) {
    const bool norm = !o.weight_decay_bn && IsNormLayer(*item.value());
    for (auto& p : item.value()->parameters(/*recurse=*/false)) (norm ? not_decayed : decayed).push_back(p);
  }
  // One options factory per optimizer; `wd` is the group's weight decay.
  auto build = [&](auto make_options, auto tag) -> std::unique_ptr<torch::optim::Optimizer> {
    using Options = decltype(make_options(0.0));
    using Opt = typename decltype(tag)::type;
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decayed, std::make_unique<Options>(make_options(o.weight_decay)));
    if (!not_decayed.empty()) groups.emplace_back(not_decayed, std::make_unique<Options>(make_options(0.0)));
    return std::make_unique<Opt>(std::move(groups), make_options(o.weight_decay));
  };
  auto adam_like = [&](auto options, double wd) {
    return options.betas(std::make_tuple(o.beta1, o.beta2)).eps(o.eps).weight_decay(wd).amsgrad(false);
  };
  if (o.optimizer == "adam") {
    return build([&](double wd) { return adam_like(torch::optim::AdamOptions(o.lr), wd); },
                 TypeTag<torch::optim::Adam>{});
  }
  if (o.optimizer == "adamw") {
    return build([&](double wd) { return adam_like(torch::optim::AdamWOptions(o.lr), wd); },
                 TypeTag<torch::optim::AdamW>{});
  }
  return build(
      [&](double wd) {
        return torch::optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(wd);
      },
      TypeTag<torch::optim::SGD>{});
}

std::vector<fs::path> ListCheckpointsNewestFirst(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> out;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex kStepFile(R"(step_(\d+)\.pt)");
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(name, m, kStepFile)) {
      steps.emplace_back(std::stoll(m[1].str()), entry.path());
    }
  }
  std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  if (fs::is_regular_file(dir / "final.pt", ec)) out.push_back(dir / "final.pt");
  for (auto& s : steps) out.push_back(std::move(s.second));
  return out;
}

std::optional<fs::path> FindNewestCheckpoint(const fs::path& dir) {
  std::vector<fs::path> all = ListCheckpointsNewestFirst(dir);
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::unique_ptr<Job> MakeTrainJob() { return std::make_unique<TrainJob>(); }

}  // namespace topolab::worker
