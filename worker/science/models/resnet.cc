// ResNet-18 in the LibTorch C++ frontend, laid out and initialised like
// torchvision.models.resnet18 so parameter names and statistics match.
#include "worker/science/models/resnet.h"

#include <stdexcept>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

namespace topolab::science {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

nn::Conv2d Conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

int64_t HalfCeil(int64_t s) { return (s - 1) / 2 + 1; }

}  // namespace

at::Tensor VisionModel::Project(const at::Tensor& /*features*/) {
  throw std::logic_error("model family '" + family() + "' has no projection head");
}

const std::vector<std::string>& ResNet18BlockNames() {
  static const std::vector<std::string> names = {"layer1.0", "layer1.1", "layer2.0", "layer2.1",
                                                 "layer3.0", "layer3.1", "layer4.0", "layer4.1"};
  return names;
}

std::vector<std::array<int64_t, 3>> ResNet18BlockShapes(int64_t input_size) {
  // conv1 (7x7/2, pad 3) and maxpool (3x3/2, pad 1) each map s -> ceil(s/2).
  int64_t s = HalfCeil(HalfCeil(input_size));
  std::vector<std::array<int64_t, 3>> shapes;
  const int64_t channels[4] = {64, 128, 256, 512};
  for (int layer = 0; layer < 4; ++layer) {
    if (layer > 0) s = HalfCeil(s);  // first block of layer2..4 has stride 2
    shapes.push_back({channels[layer], s, s});
    shapes.push_back({channels[layer], s, s});
  }
  return shapes;
}

BasicBlockImpl::BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  conv1_ = register_module("conv1", Conv(in_planes, planes, 3, stride, 1));
  bn1_ = register_module("bn1", nn::BatchNorm2d(planes));
  conv2_ = register_module("conv2", Conv(planes, planes, 3, 1, 1));
  bn2_ = register_module("bn2", nn::BatchNorm2d(planes));
  if (stride != 1 || in_planes != planes) {
    downsample_ = register_module(
        "downsample", nn::Sequential(Conv(in_planes, planes, 1, stride, 0), nn::BatchNorm2d(planes)));
  }
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = F::relu(bn1_(conv1_(x)));
  out = bn2_(conv2_(out));
  out = out + (downsample_ ? downsample_->forward(x) : x);
  return F::relu(out);
}

ResNet18Impl::ResNet18Impl(const ResNet18Options& o) : VisionModel("ResNet18"), options_(o) {
  if (o.num_classes < 0 || o.projection_dim < 0 || o.hidden <= 0) {
    throw std::invalid_argument("ResNet18Options: num_classes and projection_dim must be >= 0, hidden > 0");
  }
  conv1_ = register_module("conv1", Conv(3, 64, 7, 2, 3));
  bn1_ = register_module("bn1", nn::BatchNorm2d(64));
  const int64_t planes[4] = {64, 128, 256, 512};
  int64_t in_planes = 64;
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t stride = layer == 0 ? 1 : 2;
    BasicBlock first(in_planes, planes[layer], stride);
    BasicBlock second(planes[layer], planes[layer], 1);
    register_module("layer" + std::to_string(layer + 1), nn::Sequential(first, second));
    blocks_.push_back(first);
    blocks_.push_back(second);
    in_planes = planes[layer];
  }
  if (o.num_classes > 0) fc_ = register_module("fc", nn::Linear(512, o.num_classes));
  if (o.projection_dim > 0) {
    projection_ = register_module(
        "projection", nn::Sequential(nn::Linear(512, o.hidden), nn::BatchNorm1d(o.hidden), nn::ReLU(),
                                     nn::Linear(o.hidden, o.projection_dim)));
  }
  // torchvision: kaiming_normal_(fan_out, relu) for every conv, BN = (1, 0);
  // Linear layers keep nn.Linear's default (kaiming_uniform(a=sqrt(5))).
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    } else if (auto* bn1d = module->as<nn::BatchNorm1d>()) {
      nn::init::ones_(bn1d->weight);
      nn::init::zeros_(bn1d->bias);
    }
  }
}

TrunkOutput ResNet18Impl::Trunk(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet18: expected input [B,3,H,W], got ", x.sizes());
  at::Tensor h = F::relu(bn1_(conv1_(x)));
  h = F::max_pool2d(h, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  TrunkOutput out;
  out.blocks.reserve(blocks_.size());
  for (auto& block : blocks_) {
    h = block->forward(h);
    out.blocks.push_back(h);
  }
  out.pooled = h.mean({2, 3});  // adaptive avg pool to 1x1 + flatten
  return out;
}

at::Tensor ResNet18Impl::Classify(const at::Tensor& pooled) {
  TORCH_CHECK(!fc_.is_empty(), "ResNet18: built without a supervised head (num_classes = 0)");
  return fc_(pooled);
}

ModelOutput ResNet18Impl::Forward(const at::Tensor& x) {
  TrunkOutput trunk = Trunk(x);
  ModelOutput out;
  out.layers = std::move(trunk.blocks);
  out.features = trunk.pooled;
  if (!fc_.is_empty()) out.logits = fc_(out.features);
  return out;
}

at::Tensor ResNet18Impl::Project(const at::Tensor& pooled) {
  TORCH_CHECK(!projection_.is_empty(), "ResNet18: built without a projection head (projection_dim = 0)");
  return F::normalize(projection_->forward(pooled), F::NormalizeFuncOptions().p(2).dim(1).eps(1e-12));
}

}  // namespace topolab::science
