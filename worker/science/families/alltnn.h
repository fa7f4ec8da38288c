// All-TNN, the all-topographic neural network (Lu et al. 2023; models.md §1):
// a stack of locally connected (LC) layers whose untied kernels are laid out
// on a 2D "cortical sheet", trained with a smoothness loss that pulls
// neighbouring units' kernels together. The same options build the two
// controls: CNN (`layer_type: conv`, shared weights) and LCN (`alpha: 0`).
//
// Locally connected layer, weight layout (documented contract):
//   weight [P = Hout*Wout, D = Cin*k*k, Cout], row p = h*Wout + w (row-major
//   output position); within a row, D is ordered (Cin, kh, kw), i.e. index
//   c*k*k + i*k + j, exactly the order of at::im2col / nn::Unfold. (Keras
//   orders (kh, kw, Cin); a converter must permute.) bias [Hout, Wout, Cout].
//   Forward: im2col -> [N, D, P] -> [P, N, D] -> bmm with weight ->
//   [P, N, Cout] -> [N, Cout, Hout, Wout] + bias. The smoothness loss reads
//   the same layout, so kernel vectors and patches always agree.
//
// Sheet layout: Cout = c0*c1 with c0 the largest divisor <= sqrt(Cout); unit
// (channel ch, row h, col w) sits at sheet row h*c0 + ch/c1, column
// w*c1 + ch%c1, so every retinotopic position is a c0 x c1 hypercolumn tile.
//
// Documented choices (models.md [verify]/mismatch items):
//  * init `glorot_conv` (default): Glorot-uniform with the fans of a conv
//    with the same kernel (fan_in = k*k*Cin, fan_out = k*k*Cout), the sound
//    per-unit scale. `glorot_keras` reproduces Keras' fan computation for a
//    3-D LC kernel, which multiplies both fans by P (much smaller weights).
//  * norm: `layer` (default; LayerNorm over channels at each position, Keras
//    LayerNormalization(axis=-1), what the paper's energy analysis expects)
//    or `none` (the reference CLI default). Block order: LC -> ReLU -> norm
//    -> dropout (`norm_first: true` puts the norm before the ReLU), then the
//    optional 2x2 max-pool.
//  * 8-neighbourhood smoothness (`neighbourhood: 8`): the mean cosine
//    similarity over the four distinct neighbour directions (down, right,
//    down-right, down-left), all wrapping when `circular`. With wrap-around
//    this equals the average over all 8 neighbours. It differs from the
//    reference, whose "up"/"left" terms repeat "down"/"right" and whose
//    diagonals never wrap.
//  * L2 kernel penalty: l2 * sum(W^2) over LC/conv kernels (not biases, not
//    the readout), as Keras' kernel_regularizer.
#ifndef TOPOLAB_WORKER_SCIENCE_FAMILIES_ALLTNN_H_
#define TOPOLAB_WORKER_SCIENCE_FAMILIES_ALLTNN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "absl/status/statusor.h"
#include "worker/science/models/vision_model.h"

namespace topolab::science {

// ---------------------------------------------------------------------------
// Locally connected 2D layer (shared with the V1 ResNets)
// ---------------------------------------------------------------------------

struct LocallyConnected2dOptions {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t in_height = 1;   // input grid the layer is built for
  int64_t in_width = 1;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 0;     // zeros on every side
  bool bias = true;
  // "glorot_conv" | "glorot_keras" | "normal" (N(0,1), the V1 ResNet init).
  std::string init = "glorot_conv";
};

// Output side of a 'valid'-style window: floor((in + 2*pad - k)/s) + 1.
int64_t LcOutputSide(int64_t in, int64_t kernel, int64_t stride, int64_t padding);

class LocallyConnected2dImpl : public torch::nn::Module {
 public:
  // REQUIRES: the output grid is at least 1x1.
  explicit LocallyConnected2dImpl(const LocallyConnected2dOptions& options);
  // x [N, Cin, in_height, in_width] -> [N, Cout, Hout, Wout].
  at::Tensor forward(const at::Tensor& x);
  // The same map with explicit weight [P, D, Cout] and bias [Hout, Wout,
  // Cout] (undefined = none); used by the transmission-energy analysis.
  at::Tensor ForwardWith(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const;

  int64_t out_height() const { return out_h_; }
  int64_t out_width() const { return out_w_; }
  const LocallyConnected2dOptions& options() const { return options_; }

  at::Tensor weight;  // [P, D, Cout]
  at::Tensor bias;    // [Hout, Wout, Cout] or undefined

 private:
  LocallyConnected2dOptions options_;
  int64_t out_h_ = 0, out_w_ = 0;
};
TORCH_MODULE(LocallyConnected2d);

// ---------------------------------------------------------------------------
// Sheet <-> channel layout
// ---------------------------------------------------------------------------

// (c0, c1): c0 = largest divisor of `channels` <= sqrt(channels), c1 = channels/c0.
std::pair<int64_t, int64_t> SheetTile(int64_t channels);
// [..., C, H, W] -> [..., H*c0, W*c1].
at::Tensor ChannelsToSheet(const at::Tensor& x);
// Inverse: [..., H*c0, W*c1] -> [..., C, H, W]. REQUIRES: sheet sides divisible.
at::Tensor SheetToChannels(const at::Tensor& sheet, int64_t channels);

// ---------------------------------------------------------------------------
// Smoothness loss
// ---------------------------------------------------------------------------

// Kernel vectors of an LC layer on its sheet: [H*c0, W*c1, D (+1 with bias)].
at::Tensor SheetKernelVectors(const at::Tensor& weight, const at::Tensor& bias, int64_t out_h,
                              int64_t out_w);
// (1 - mean cosine similarity to neighbours) / 2 for vectors [Hs, Ws, D].
// neighbourhood 4: (mean(sim_down) + mean(sim_right)) / 2; 8: see file
// comment. circular: the last row/column pairs with the first; otherwise
// only interior pairs count. Zero vectors have similarity 0 to everything.
at::Tensor SheetSmoothnessLoss(const at::Tensor& vectors, bool circular = true, int neighbourhood = 4);

// ---------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------

struct AllTnnLayerSpec {
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t channels = 16;
  bool pool = false;  // 2x2 max-pool after the block
};

// `model:` keys of family "alltnn" (all optional):
//   preset: full | mini     full = the six layers of models.md §1.1 at 150 px;
//                           mini = the 3-layer CPU net of §1.5 at 32 px
//   image_size: N           input side (default: 150 full, 32 mini)
//   layers: [{kernel, stride, channels, pool}, ...]   overrides the preset
//   layer_type: lc | conv   conv = the CNN control (shared weights)
//   alpha: 10               smoothness weight (0 = the LCN control)
//   layer_factors: [1,...]  per-layer factor f_l (one per layer)
//   circular: true          sheet wraps for neighbour pairs
//   neighbourhood: 4 | 8
//   smoothness_bias: true   append the bias to each kernel vector
//   l2: 1e-6                kernel L2 coefficient
//   norm: layer | none;  norm_first: false;  dropout: 0
//   init: glorot_conv | glorot_keras
//   energy_post: activation | normalized   what "postsynaptic" |y| means
struct AllTnnOptions {
  int64_t image_size = 150;
  std::vector<AllTnnLayerSpec> layers;
  std::string layer_type = "lc";
  double alpha = 10.0;
  std::vector<double> layer_factors;
  bool circular = true;
  int neighbourhood = 4;
  bool smoothness_bias = true;
  double l2 = 1e-6;
  std::string norm = "layer";
  bool norm_first = false;
  double dropout = 0.0;
  std::string init = "glorot_conv";
  std::string energy_post = "activation";
  int64_t num_classes = 10;
};

// The six layers of models.md §1.1 / the three of §1.5.
std::vector<AllTnnLayerSpec> AllTnnFullLayers();
std::vector<AllTnnLayerSpec> AllTnnMiniLayers();

// Reads the `model` object (family "alltnn"); `num_classes` fills
// AllTnnOptions::num_classes. Checks that every layer's output grid is >= 1.
// InvalidArgument names the key.
absl::StatusOr<AllTnnOptions> ParseAllTnnOptions(const nlohmann::json& model_spec, int64_t num_classes);

// Per-layer geometry (filled at construction).
struct AllTnnLayerGeometry {
  int64_t in_channels, in_h, in_w;   // layer input
  int64_t out_channels, out_h, out_w;  // LC output (before pooling)
  int64_t sheet_h, sheet_w;          // out_h*c0, out_w*c1
};

class AllTnnImpl : public VisionModel {
 public:
  explicit AllTnnImpl(const AllTnnOptions& options);

  std::string family() const override { return "alltnn"; }
  // "layer0" ... : each block's output after activation/norm, before pooling.
  const std::vector<std::string>& LayerNames() const override { return layer_names_; }
  int64_t feature_dim() const override { return feature_dim_; }
  int64_t num_classes() const override { return options_.num_classes; }
  // x [B,3,S,S] ImageNet-normalised (VisionModel contract, preprocess.h).
  ModelOutput Forward(const at::Tensor& x) override;
  // x01 [B,3,S,S] in [0,1] (scaled to [-1,1] inside).
  ModelOutput ForwardUnit(const at::Tensor& x01);
  // alpha * sum_l f_l * smoothness_l + l2 * sum ||W_l||^2.
  at::Tensor AuxiliaryLoss() override;

  // The smoothness term alone, per layer (undefined tensors for conv layers).
  std::vector<at::Tensor> LayerSmoothness();
  // Transmission energy of every layer for the [0,1] batch x, summed over the
  // batch: [C, out_h, out_w] per layer, E = (1/3) sum|post| + (2/3) sum
  // layer_abs(|x_prev|), where layer_abs is the layer with |W| and no bias
  // and x_prev the layer's actual input (after the previous norm and pool;
  // the scaled image for layer 0).
  std::vector<at::Tensor> TransmissionEnergy(const at::Tensor& x);

  const AllTnnOptions& options() const { return options_; }
  const std::vector<AllTnnLayerGeometry>& geometry() const { return geometry_; }
  // The kernel tensor of layer l ([P, D, Cout] for LC, [Cout, Cin, k, k] for conv).
  at::Tensor LayerWeight(size_t l) const;

 private:
  // One layer's linear map with the given weight/bias override flags.
  at::Tensor LayerForward(size_t l, const at::Tensor& x, bool abs_weights_no_bias) const;
  at::Tensor Normalize(size_t l, const at::Tensor& x) const;

  AllTnnOptions options_;
  std::vector<std::string> layer_names_;
  std::vector<AllTnnLayerGeometry> geometry_;
  std::vector<LocallyConnected2d> lc_;
  std::vector<torch::nn::Conv2d> conv_;
  std::vector<at::Tensor> norm_gain_, norm_bias_;
  torch::nn::Linear readout_{nullptr};
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(AllTnn);

// Factory entry for model.family == "alltnn".
absl::StatusOr<std::shared_ptr<VisionModel>> MakeAllTnnModel(const nlohmann::json& model_spec,
                                                             int64_t num_classes);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_FAMILIES_ALLTNN_H_
