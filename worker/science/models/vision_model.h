// VisionModel: the one interface every trainable model family implements
// (TDANN's ResNet-18 here; All-TNN, the V1 ResNets and the expansion model in
// worker/science/families/), so the train and extract jobs never need to know
// which family they run.
//
// A VisionModel maps a normalised image batch [B,3,H,W] to
//   * `layers`: the named intermediate outputs that topographic losses and
//     analyses look at (ResNet-18: the 8 BasicBlock outputs, post-ReLU), in
//     LayerNames() order, each [B,C,H',W'] (or [B,U] for flat layers). Units
//     are flattened C-major: unit = c*H'*W' + h*W' + w (tensor.flatten(1));
//   * `features`: the pooled trunk output [B, feature_dim()] that heads read;
//   * `logits`: the supervised head's output [B, num_classes] (undefined when
//     the model was built with num_classes == 0).
// A family with a self-supervised projection head overrides Project().
// A family with its own regulariser (All-TNN smoothness, L2 kernel penalty)
// returns it from AuxiliaryLoss(), which the train job adds to the task loss.
//
// Adding a family: implement VisionModel (FooImpl : public VisionModel,
// TORCH_MODULE(Foo) if you like), register every parameter/buffer with
// register_module/register_parameter as usual so checkpoints and optimizers
// see them, and add one entry to the family table in model_factory.cc.
//
// Thread-compatible (as torch::nn::Module): one thread drives a model.
#ifndef TOPOLAB_WORKER_SCIENCE_MODELS_VISION_MODEL_H_
#define TOPOLAB_WORKER_SCIENCE_MODELS_VISION_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace topolab::science {

struct ModelOutput {
  std::vector<at::Tensor> layers;  // one per LayerNames() entry
  at::Tensor features;             // [B, feature_dim()]
  at::Tensor logits;               // [B, num_classes] or undefined
};

class VisionModel : public torch::nn::Module {
 public:
  explicit VisionModel(std::string name) : torch::nn::Module(std::move(name)) {}
  ~VisionModel() override = default;

  // The family name as written in `model.family` ("resnet18", ...).
  virtual std::string family() const = 0;
  // Names of the entries of ModelOutput::layers, in order.
  virtual const std::vector<std::string>& LayerNames() const = 0;
  // Width of ModelOutput::features.
  virtual int64_t feature_dim() const = 0;
  // Classes of the supervised head (0 = no head).
  virtual int64_t num_classes() const = 0;

  // Full forward pass. REQUIRES: x [B,3,H,W] on this model's device, H and W
  // at least the family's minimum input size.
  virtual ModelOutput Forward(const at::Tensor& x) = 0;

  // Self-supervised projection of `features` (SimCLR: L2-normalised rows).
  // Families without a projection head throw std::logic_error.
  virtual at::Tensor Project(const at::Tensor& features);
  // Whether Project() is available.
  virtual bool has_projection_head() const { return false; }

  // Extra loss term the family adds to every training step (scalar tensor),
  // or an undefined tensor when it has none (the default).
  virtual at::Tensor AuxiliaryLoss() { return at::Tensor(); }
};

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_MODELS_VISION_MODEL_H_
