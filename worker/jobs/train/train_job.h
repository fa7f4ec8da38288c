// The `train` job kind: trains a VisionModel (model.family, ResNet-18 by
// default) on an ImageDataset (data section) with SGD, Adam or AdamW, an
// optional gradient-norm clip and a cosine, constant or multistep learning
// rate, reporting metrics, writing checkpoints and resuming from the newest
// one on a retried attempt.
//
// Job spec keys (top level of the job spec, beside kind/id/seed/model/data;
// defaults in parentheses — proto/config/schema_train.cc fills the same ones):
//   objective        supervised (supervised; others via MakeObjective)
//   epochs           passes over the train split (1)
//   max_steps        stop after this many steps; 0 = epochs*steps_per_epoch (0)
//   batch_size       images per step (64); steps_per_epoch = floor(N/batch_size)
//                    (the last partial batch of an epoch is dropped; at least 1)
//   optimizer:
//     name           sgd | adam | adamw (sgd)
//     lr             peak learning rate (0.1)
//     sgd:   momentum (0.9), nesterov (false)
//     adam, adamw: betas ([0.9, 0.999], each in [0, 1)), eps (1e-8; All-TNN's
//                    paper uses 1e-7) — torch::optim::Adam / AdamW, amsgrad off
//     weight_decay (1e-4): sgd and adam add weight_decay * p to the gradient
//                    (L2); adamw decays decoupled, p -= lr * weight_decay * p
//     weight_decay_bn (false: normalisation-layer weights/biases get none, as
//                    the OFFICIAL TDANN config; for every optimizer)
//     clip_grad_norm (0 = off): before each step the gradients of all
//                    optimised parameters are scaled so their total L2 norm
//                    is at most this (torch::nn::utils::clip_grad_norm_); the
//                    pre-clip norm is then reported as metric grad_norm
//   lr_schedule      cosine | constant | multistep (cosine): per step,
//                    cosine: lr(t) = min_lr + (lr - min_lr)(1 + cos(pi t))/2 with
//                    t = (step - warmup_steps)/(total_steps - warmup_steps), so
//                    step 0 uses lr and min_lr is reached after the last step;
//                    multistep: lr * lr_gamma^k, k = the number of milestones m
//                    (lr_milestones, in epochs, fractions allowed) with
//                    step >= m * steps_per_epoch (rounded up to a step; counted
//                    from step 0, warm-up included) — PyTorch's MultiStepLR
//                    stepped once per epoch, for integral milestones;
//                    the first warmup_steps ramp linearly: lr*(step+1)/warmup_steps
//   min_lr (0), warmup_steps (0), lr_milestones ([]), lr_gamma (0.1)
//   hflip            random horizontal flips of the train images (false)
//   log_every        metrics + a log line every N steps (10)
//   checkpoint_every checkpoint every N steps; 0 = only the final one (100)
//   eval_batches     test-set batches evaluated at the end; 0 = none (10)
//   eval_batch_size  0 = batch_size (0)
//   seed             top-level job seed (0): weights, data order, flips
//
// Determinism: with the same spec, seed, device and thread count the loss and
// accuracy trace is identical (bit-exact on CPU with 1 thread). The data
// order of epoch e is randperm(N) from a generator seeded with (seed, e), so a
// resumed run continues with the same batches.
//
// Artifacts under out_dir (each announced with ArtifactReady):
//   checkpoints/step_NNNNNNN.pt   every checkpoint_every steps (7-digit step)
//   checkpoints/final.pt          the final model; this is the name other
//                                 stages read (`<stage>/checkpoints/final.pt`)
//   metrics.json                  {"final": {step, loss, accuracy, lr, epoch,
//                                 img_per_s, task_loss, test_*...},
//                                 "history": [one object per log_every report,
//                                 with "step"], "test": {test_loss,
//                                 test_accuracy, test_images} ({} when
//                                 eval_batches = 0), "class_names", "total_steps",
//                                 "steps_per_epoch"}
// Metrics reported every log_every steps: loss (mean total loss over the
// window), accuracy (mean train-batch accuracy), task_loss and any loss-term
// scalars, lr (of the window's last step), epoch (steps / steps_per_epoch),
// img_per_s (window wall-clock throughput), grad_norm (with clip_grad_norm:
// mean pre-clip total gradient norm over the window); at the end test_loss,
// test_accuracy, test_images on the first eval_batches test batches.
// Checkpoint meta (see science/models/checkpoint.h): kind, model, data,
// seed, class_names, epoch, steps_per_epoch, total_steps, image_size.
//
// Resume: if resume_dir/checkpoints/ holds step_*.pt (or final.pt), training
// restarts from the newest readable one (model, optimizer state — SGD
// momentum buffers, Adam moments and step counts —, step; every random
// draw of a step is a function of (seed, step), so no RNG state is needed) and
// logs "resumed from step N". An unreadable checkpoint is logged and skipped.
#ifndef TOPOLAB_WORKER_JOBS_TRAIN_TRAIN_JOB_H_
#define TOPOLAB_WORKER_JOBS_TRAIN_TRAIN_JOB_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "absl/status/statusor.h"
#include "worker/jobs/job.h"

namespace topolab::worker {

// Parsed train settings (see the file comment).
struct TrainOptions {
  std::string objective = "supervised";
  int64_t epochs = 1;
  int64_t max_steps = 0;
  int64_t batch_size = 64;
  std::string optimizer = "sgd";  // sgd | adam | adamw
  double lr = 0.1;
  std::string lr_schedule = "cosine";  // cosine | constant | multistep
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  std::vector<double> lr_milestones;  // multistep: epochs, increasing
  double lr_gamma = 0.1;
  double momentum = 0.9;        // sgd
  bool nesterov = false;        // sgd
  double beta1 = 0.9;           // adam, adamw
  double beta2 = 0.999;         // adam, adamw
  double eps = 1e-8;            // adam, adamw
  double weight_decay = 1e-4;
  bool weight_decay_bn = false;
  double clip_grad_norm = 0.0;  // 0 = off
  bool hflip = false;
  int64_t log_every = 10;
  int64_t checkpoint_every = 100;
  int64_t eval_batches = 10;
  int64_t eval_batch_size = 0;
  uint64_t seed = 0;
};

// Reads the train keys of a job spec; absent keys keep their defaults,
// unknown keys are ignored (the config validator rejects them at submit).
// InvalidArgument names the key ("optimizer.lr: must be a non-negative number").
absl::StatusOr<TrainOptions> ParseTrainOptions(const nlohmann::json& job_spec);

// Learning rate at `step` (0-based) of `total_steps`, with `steps_per_epoch`
// steps per epoch (used by multistep's milestones). REQUIRES: steps_per_epoch >= 1.
double LearningRateAt(const TrainOptions& options, int64_t step, int64_t total_steps,
                      int64_t steps_per_epoch);

// The first step at which a multistep milestone of `epochs` applies:
// ceil(epochs * steps_per_epoch), where a product within 1e-9 (relative) of
// an integer counts as that integer (0.3 epochs x 10 steps = step 3).
int64_t MilestoneStep(double epochs, int64_t steps_per_epoch);

// The optimizer of `options` (name, lr, betas/eps or momentum/nesterov,
// weight decay) over `model`'s parameters in two groups: normalisation-layer
// (module name containing "Norm") weights and biases get no weight decay
// unless weight_decay_bn; every other parameter gets weight_decay. The group
// without decay is left out when empty. The lr of each group is set per step
// by the train loop (Optimizer options' set_lr).
// REQUIRES: options as returned by ParseTrainOptions.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const TrainOptions& options, torch::nn::Module& model);

// Newest checkpoint under `dir` (final.pt wins over step files; then the
// highest step_NNNNNNN.pt), or nullopt when there is none.
std::optional<std::filesystem::path> FindNewestCheckpoint(const std::filesystem::path& dir);
// Every checkpoint under `dir` in that order (final.pt, then steps descending).
std::vector<std::filesystem::path> ListCheckpointsNewestFirst(const std::filesystem::path& dir);

std::unique_ptr<Job> MakeTrainJob();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_TRAIN_TRAIN_JOB_H_
