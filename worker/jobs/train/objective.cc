// Training objectives and their tensor helpers.
#include "worker/jobs/train/objective.h"

#include "worker/jobs/train/tdann_terms.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace topolab::worker {

at::Tensor NormalizeImageNet(const at::Tensor& images) {
  const auto opts = images.options();
  const at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, opts.dtype(at::kDouble)).to(opts).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.229, 0.224, 0.225}, opts.dtype(at::kDouble)).to(opts).view({1, 3, 1, 1});
  return (images - mean) / std;
}

at::Tensor RandomHorizontalFlip(const at::Tensor& images, at::Generator* generator) {
  const int64_t b = images.size(0);
  // Draw on the CPU generator so the flips are the same on every device.
  at::Tensor coin = generator != nullptr ? at::rand({b}, *generator, at::TensorOptions().dtype(at::kFloat))
                                         : at::rand({b}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor mask = coin.lt(0.5).to(images.device()).view({b, 1, 1, 1});
  return at::where(mask, images.flip({3}), images);
}

StepLoss SupervisedObjective::Compute(science::VisionModel& model, const StepBatch& batch) {
  at::Tensor x = batch.images;
  if (hflip_) x = RandomHorizontalFlip(x, batch.generator);
  StepLoss result;
  result.output = model.Forward(NormalizeImageNet(x));
  TORCH_CHECK(result.output.logits.defined(),
              "supervised objective: the model has no classifier head (num_classes = 0)");
  result.loss = at::cross_entropy_loss(result.output.logits, batch.labels);
  at::Tensor correct = result.output.logits.detach().argmax(1).eq(batch.labels);
  result.scalars["task_loss"] = result.loss.detach().item<double>();
  result.scalars["accuracy"] = correct.to(at::kDouble).mean().item<double>();
  return result;
}

absl::StatusOr<std::unique_ptr<TrainObjective>> MakeObjective(const TrainOptions& options,
                                                              const nlohmann::json& job_spec) {
  if (options.objective == "supervised") {
    return std::unique_ptr<TrainObjective>(std::make_unique<SupervisedObjective>(options.hflip));
  }
  if (options.objective == "simclr") return MakeSimClrObjective(job_spec);  // tdann_terms.h
  return absl::InvalidArgumentError(absl::StrCat("objective: unknown objective '", options.objective,
                                                 "' (known: supervised, simclr)"));
}

absl::StatusOr<std::vector<std::unique_ptr<LossTerm>>> MakeLossTerms(const nlohmann::json& job_spec,
                                                                     const science::VisionModel& model,
                                                                     const JobContext& context) {
  std::vector<std::unique_ptr<LossTerm>> terms;
  // TDANN spatial loss (tdann_terms.h); null when spatial_weight is 0.
  absl::StatusOr<std::unique_ptr<LossTerm>> spatial = MakeSpatialLossTerm(job_spec, model, context);
  if (!spatial.ok()) return spatial.status();
  if (*spatial) terms.push_back(std::move(*spatial));
  return terms;
}

}  // namespace topolab::worker
