// The loss of one training step, kept apart from the train loop so new
// objectives (SimCLR's two views + NT-Xent) and extra terms (TDANN's spatial
// loss on the block outputs, a family's AuxiliaryLoss) plug in without
// touching the loop.
//
// One step: the loop hands the objective a batch of raw images in [0, 1]
// (already on the model's device) and labels; the objective augments and
// normalises as it needs, runs the model, and returns the scalar loss to
// backpropagate plus the model output it computed (so LossTerms can read
// the block outputs of the same forward pass) and named scalars to report.
// Then every LossTerm adds its part. The loop calls backward() on the sum.
#ifndef TOPOLAB_WORKER_JOBS_TRAIN_OBJECTIVE_H_
#define TOPOLAB_WORKER_JOBS_TRAIN_OBJECTIVE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/jobs/train/train_job.h"
#include "worker/science/models/vision_model.h"

namespace topolab::worker {

struct StepBatch {
  at::Tensor images;   // [B,3,S,S] float32 in [0,1], on the model's device
  at::Tensor labels;   // [B] int64, on the model's device
  int64_t step = 0;    // 0-based global step
  at::Generator* generator = nullptr;  // the run's seeded CPU generator (augmentations)
};

struct StepLoss {
  at::Tensor loss;                              // scalar, requires grad
  science::ModelOutput output;                  // of the forward pass that made `loss`
  std::map<std::string, double> scalars;        // reported as metrics (e.g. "task_loss", "accuracy")
};

class TrainObjective {
 public:
  virtual ~TrainObjective() = default;
  virtual std::string name() const = 0;
  // Loss of one batch in training mode. `scalars` gets at least "task_loss".
  virtual StepLoss Compute(science::VisionModel& model, const StepBatch& batch) = 0;
};

// An extra term added to the objective's loss (spatial loss, regularisers).
class LossTerm {
 public:
  virtual ~LossTerm() = default;
  virtual std::string name() const = 0;
  // Returns the (weighted) scalar term; may add per-term scalars.
  virtual at::Tensor Compute(const science::ModelOutput& output,
                             std::map<std::string, double>* scalars) = 0;
};

// Supervised cross-entropy on the model's logits. Optionally flips images
// horizontally at random (p = 0.5, from batch.generator). Reports
// task_loss and accuracy (fraction of the batch classified right).
class SupervisedObjective : public TrainObjective {
 public:
  explicit SupervisedObjective(bool hflip) : hflip_(hflip) {}
  std::string name() const override { return "supervised"; }
  StepLoss Compute(science::VisionModel& model, const StepBatch& batch) override;

 private:
  bool hflip_;
};

// Builds the objective named by options.objective. InvalidArgument for an
// unknown name ("objective: unknown objective 'x' ...").
absl::StatusOr<std::unique_ptr<TrainObjective>> MakeObjective(const TrainOptions& options,
                                                              const nlohmann::json& job_spec);

// Extra loss terms for a run: TDANN's spatial loss (tdann_terms.h) when
// spatial_weight > 0. InvalidArgument names a bad key.
absl::StatusOr<std::vector<std::unique_ptr<LossTerm>>> MakeLossTerms(const nlohmann::json& job_spec,
                                                                     const science::VisionModel& model,
                                                                     const JobContext& context);

// ImageNet normalisation of [B,3,H,W] images in [0,1]:
// (x - (0.485,0.456,0.406)) / (0.229,0.224,0.225).
at::Tensor NormalizeImageNet(const at::Tensor& images);

// Randomly mirrors each image (dim 3) with probability 0.5 using `generator`.
at::Tensor RandomHorizontalFlip(const at::Tensor& images, at::Generator* generator);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_TRAIN_OBJECTIVE_H_
