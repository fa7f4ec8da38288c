// The untrained "expansion" CNN (Kazemian, Elmoznino & Bonner; models.md §2):
// five blocks of conv (no bias) -> nonlinearity -> average pool, with a fixed
// bank of curvature ("banana") filters in block 1 applied to each RGB channel
// separately, and random convolutions in blocks 2-5 whose widths grow
// (`filters_2..5`). No weight is ever trained: every weight is a buffer drawn
// once at construction from a private generator seeded by `seed`, so the same
// options always give the same network, whatever the global torch RNG holds.
//
// Spatial sizes (224 px input): 222 -> 111 -> 105 -> 52 -> 48 -> 24 -> 22 ->
// 11 -> 9 -> 6; at 144 px: 142 -> 71 -> 65 -> 32 -> 28 -> 14 -> 12 -> 6 -> 4
// -> 1. The minimum input side is 142 px. Features = the flattened block-5
// output, filters_5 * s5 * s5 values per image (C-major).
//
// Documented choices (models.md [verify] items):
//  * Curvature grid: the reference builds its grid with a transposed
//    meshgrid, so array element [r][c] sits at x = r - 7, y = 7 - c.
//    `curvature_grid: reference` (default) reproduces that layout exactly;
//    `image` uses the textbook layout x = c - 7, y = 7 - r. The two banks hold
//    the same set of filters (a reflection of one another; orientations cover
//    the full circle), in a different order.
//  * Input normalisation: the images are [0,1]; `normalize: imagenet`
//    (default, the Brain-Score preprocessing the reference loads with) applies
//    ImageNet mean/std; `none` feeds [0,1] as is.
#ifndef TOPOLAB_WORKER_SCIENCE_FAMILIES_EXPANSION_H_
#define TOPOLAB_WORKER_SCIENCE_FAMILIES_EXPANSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>

#include "absl/status/statusor.h"
#include "worker/science/models/vision_model.h"

namespace topolab::science {

// Parameters of the layer-1 curvature filter bank (models.md §2.1).
struct CurvatureFilterOptions {
  int n_orientations = 12;                 // theta = 2*pi*i/n over the full circle
  std::vector<double> curvatures;          // empty = logspace(-2, -0.1, 3)
  std::vector<double> gaussian_sizes = {5.0};
  std::vector<double> frequencies = {1.2};
  double gamma = 1.0;
  double sigma_x = 1.0;
  double sigma_y = 1.0;
  int size = 15;                           // odd kernel side
  std::string grid = "reference";          // "reference" | "image" (see file comment)
};

// The curvature bank as float32 [n, 1, size, size], n = curvatures *
// gaussian_sizes * orientations * frequencies, ordered curvature (outer) ->
// size -> orientation -> frequency (inner). For one filter with orientation
// theta, curvature c, size s, frequency f:
//   xc = x cos(theta) + y sin(theta),  xs = -x sin(theta) + y cos(theta)
//   k  = xc + c * xs^2
//   G  = exp(-(f^2/2) * ((k/sigma_x)^2 + (xs/(sigma_y*s))^2))
//   filter = Re(gamma * G * (exp(i f k) - exp(-sigma_x/2))), minus its mean.
// REQUIRES: options.size odd and >= 3, n_orientations >= 1.
at::Tensor CurvatureFilterBank(const CurvatureFilterOptions& options);

// `model:` keys of family "expansion" (all optional):
//   image_size: 224          input side the features are sized for (>= 142)
//   filters_2..filters_5     1000, 3000, 5000, 3000
//   init: kaiming_uniform    | kaiming_normal | xavier_uniform | xavier_normal
//                            | orthogonal | uniform | normal  (torch defaults)
//   nonlinearity: relu       | gelu | elu | abs | leaky_relu | none | zscore
//   layer1: curvature        | random (the "fully_random" control:
//                            `random_filters_1` random 15x15 filters, pad 7)
//   random_filters_1: 3000
//   curvature_grid: reference | image
//   normalize: imagenet      | none
//   seed: 42                 generator seed of every random weight
//   readout_norm: batchnorm  | none: what the trainable readout sees. The
//                            random features' scale differs by orders of
//                            magnitude between widths and seeds, so by
//                            default they are standardised per feature
//                            (BatchNorm1d without affine parameters: batch
//                            statistics in training, running ones in eval)
//                            before the linear layer; `none` = the raw
//                            features, as a plain linear probe.
struct ExpansionOptions {
  int64_t image_size = 224;
  int64_t filters_2 = 1000;
  int64_t filters_3 = 3000;
  int64_t filters_4 = 5000;
  int64_t filters_5 = 3000;
  std::string init = "kaiming_uniform";
  std::string nonlinearity = "relu";
  std::string layer1 = "curvature";
  int64_t random_filters_1 = 3000;
  std::string curvature_grid = "reference";
  std::string normalize = "imagenet";
  uint64_t seed = 42;
  std::string readout_norm = "batchnorm";
  // > 0: a trainable linear readout on the features (a linear probe the
  // `train` job fits with its optimizer; the conv weights stay fixed buffers).
  int64_t num_classes = 0;
};

// Reads the `model` object (family "expansion"). Unknown keys other than the
// shared ones (family, num_classes, projection_dim, projection_hidden) give
// InvalidArgument naming the key ("model.filters_5: must be a positive integer").
absl::StatusOr<ExpansionOptions> ParseExpansionOptions(const nlohmann::json& model_spec);

// Spatial side of each block's output for an input side `image_size`
// (5 entries). Entries <= 0 mean the input is too small.
std::vector<int64_t> ExpansionBlockSides(int64_t image_size, const ExpansionOptions& options);

class ExpansionImpl : public VisionModel {
 public:
  // REQUIRES: options validated (ParseExpansionOptions or by hand).
  explicit ExpansionImpl(const ExpansionOptions& options);

  std::string family() const override { return "expansion"; }
  // "block1" .. "block5": each block's output after its pooling.
  const std::vector<std::string>& LayerNames() const override;
  int64_t feature_dim() const override { return feature_dim_; }
  int64_t num_classes() const override { return options_.num_classes; }
  // x: [B,3,H,W] ImageNet-normalised (the VisionModel contract; see
  // preprocess.h). `features` is the flattened block-5 output; `logits` is
  // the linear readout's output (undefined when num_classes == 0).
  ModelOutput Forward(const at::Tensor& x) override;
  // The same for images in [0,1].
  ModelOutput ForwardUnit(const at::Tensor& x01);
  // Only the flattened block-5 output of [0,1] images (keeps no intermediate).
  at::Tensor Features(const at::Tensor& x01);

  const ExpansionOptions& options() const { return options_; }
  // Layer-k weight ([Cout, Cin, k, k]; block 1: [108 or n, 1, 15, 15] per channel).
  const at::Tensor& weight(int block) const { return weights_.at(block - 1); }

 private:
  at::Tensor Block(int block, const at::Tensor& x) const;

  ExpansionOptions options_;
  std::vector<at::Tensor> weights_;  // 5 buffers
  int64_t feature_dim_ = 0;
  torch::nn::BatchNorm1d readout_norm_{nullptr};  // readout_norm: batchnorm
  torch::nn::Linear readout_{nullptr};
};
TORCH_MODULE(Expansion);

// Factory entry for model.family == "expansion"; num_classes > 0 adds the
// linear readout (the only trainable part).
absl::StatusOr<std::shared_ptr<VisionModel>> MakeExpansionModel(const nlohmann::json& model_spec,
                                                                int64_t num_classes);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_FAMILIES_EXPANSION_H_
