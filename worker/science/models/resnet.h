// torchvision-shaped ResNet-18 (BasicBlocks) as used by TDANN
// (../shared/science/tdann.md §1): conv1 7x7/2 + BN + ReLU + maxpool 3x3/2
// stem, layer1..layer4 of two BasicBlocks each (64, 128, 256, 512 channels,
// stride 2 from layer2 on with a 1x1 conv + BN downsample), global average
// pooling to 512-d. Parameter names, shapes and initialisation follow
// torchvision.models.resnet18: kaiming_normal_(fan_out, relu) for convs, BN
// weight 1 / bias 0, Linear layers as nn.Linear's default.
//
// Heads on the pooled 512-d features:
//   * supervised: fc = Linear(512, num_classes) (omitted when num_classes = 0)
//   * SimCLR projection (VISSL): Linear 512->hidden, BN, ReLU, Linear
//     hidden->projection_dim, then L2-normalised rows.
//
// Block outputs for an input of side S (block-name: channels x side), with
// s(S) = floor((S-1)/2)+1 for every stride-2 stage (conv1, maxpool, layer2,
// layer3, layer4 all pad so that this holds):
//   layer1.x: 64 x s(s(S)), layer2.x: 128 x s(s(s(S))), layer3.x: 256 x .., layer4.x: 512 x ..
// e.g. S=224: 56, 28, 14, 7; S=64: 16, 8, 4, 2; S=32: 8, 4, 2, 1.
#ifndef TOPOLAB_WORKER_SCIENCE_MODELS_RESNET_H_
#define TOPOLAB_WORKER_SCIENCE_MODELS_RESNET_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "worker/science/models/vision_model.h"

namespace topolab::science {

// "layer1.0", "layer1.1", ..., "layer4.1".
const std::vector<std::string>& ResNet18BlockNames();

// Output shape [C, H, W] of each of the 8 blocks for a square input of side
// `input_size` (the closed form above). REQUIRES: input_size >= 1.
std::vector<std::array<int64_t, 3>> ResNet18BlockShapes(int64_t input_size);

struct TrunkOutput {
  std::vector<at::Tensor> blocks;  // 8 block outputs, ResNet18BlockNames() order
  at::Tensor pooled;               // [B, 512]
};

struct ResNet18Options {
  int64_t num_classes = 1000;      // supervised head width; 0 = no head
  int64_t projection_dim = 128;    // SimCLR output width; 0 = no projection head
  int64_t hidden = 512;            // SimCLR hidden width
};

// torchvision BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN, + identity or
// 1x1(stride)-BN downsample, ReLU.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential downsample_{nullptr};  // null when identity
};
TORCH_MODULE(BasicBlock);

class ResNet18Impl : public VisionModel {
 public:
  explicit ResNet18Impl(const ResNet18Options& o = ResNet18Options());

  // x [B,3,H,W] normalised; any H,W >= 32 (smaller inputs work down to 1 px
  // but the deepest blocks then see a 1x1 map).
  TrunkOutput Trunk(const at::Tensor& x);
  // Supervised head -> logits [B, num_classes]. REQUIRES: num_classes > 0.
  at::Tensor Classify(const at::Tensor& pooled);

  // VisionModel.
  std::string family() const override { return "resnet18"; }
  const std::vector<std::string>& LayerNames() const override { return ResNet18BlockNames(); }
  int64_t feature_dim() const override { return 512; }
  int64_t num_classes() const override { return options_.num_classes; }
  // Trunk + Classify (logits undefined when num_classes == 0).
  ModelOutput Forward(const at::Tensor& x) override;
  // SimCLR head 512->hidden->BN->ReLU->projection_dim, L2-normalised rows.
  // REQUIRES: projection_dim > 0.
  at::Tensor Project(const at::Tensor& pooled) override;
  bool has_projection_head() const override { return options_.projection_dim > 0; }

  const ResNet18Options& options() const { return options_; }

 private:
  ResNet18Options options_;
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<BasicBlock> blocks_;     // layer1.0 ... layer4.1
  torch::nn::Linear fc_{nullptr};
  torch::nn::Sequential projection_{nullptr};
};
TORCH_MODULE(ResNet18);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_MODELS_RESNET_H_
