// V1 ResNet components and the ResNet-50 variants.
#include "worker/science/families/v1resnet.h"

#include <cmath>
#include <stdexcept>

#include <torch/nn/init.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/science/families/preprocess.h"
#include "worker/science/families/spec_util.h"

namespace topolab::science {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

// ---------------------------------------------------------------------------
DoGConv2dImpl::DoGConv2dImpl(int64_t channels, int64_t k, int64_t padding, std::string mode)
    : channels_(channels), k_(k), padding_(padding), mode_(std::move(mode)) {
  const int64_t ks = 2 * k + 1;
  at::Tensor c = at::arange(1, ks + 1, at::kFloat) - double(k + 1);
  kernel_dists = register_buffer("kernel_dists", c.view({1, ks}).pow(2) + c.view({ks, 1}).pow(2));
  const int64_t n = channels * channels;
  sigma1 = register_parameter("sigma1", at::rand({n, 1, 1}) + k / 2.0);
  sigma2_scale = register_parameter("sigma2_scale", at::rand({n, 1, 1}) + k / 2.0);
  total_scale = register_parameter("total_scale", at::randn({n, 1, 1}) * 2.0);
}

at::Tensor DoGConv2dImpl::Kernels() const {
  const int64_t ks = 2 * k_ + 1;
  at::Tensor s1 = sigma1.clamp_min(0.1);
  at::Tensor s2 = s1 * sigma2_scale.clamp_min(1 + 1e-4);
  at::Tensor kern;
  if (mode_ == "reference") {
    at::Tensor e = (s1 / kPi) * at::exp(-kernel_dists / s1);
    at::Tensor i = (s2 / kPi) * at::exp(-kernel_dists / s2.clamp_min(1e-6));
    kern = (e - i) * total_scale;
    kern = kern / kern.norm(2, {0}, true).clamp_min(1e-12);  // across Cout*Cin per pixel
  } else {
    at::Tensor e = at::exp(-kernel_dists / s1) / (kPi * s1);
    at::Tensor i = at::exp(-kernel_dists / s2.clamp_min(1e-6)) / (kPi * s2);
    at::Tensor dog = e - i;
    kern = total_scale * dog / dog.norm(2, {1, 2}, true).clamp_min(1e-12);  // per kernel
  }
  return kern.view({channels_, channels_, ks, ks});
}

at::Tensor DoGConv2dImpl::forward(const at::Tensor& x) {
  return at::conv2d(x, Kernels(), {}, 1, padding_);
}

DoGLayerImpl::DoGLayerImpl(int64_t dog_channels, int64_t k, std::string mode)
    : dog_channels_(dog_channels) {
  dog = register_module("dog_conv", DoGConv2d(dog_channels, k, k, std::move(mode)));
}

at::Tensor DoGLayerImpl::forward(const at::Tensor& x) {
  at::Tensor a = dog->forward(x.narrow(1, 0, dog_channels_));
  return at::cat({a, x.narrow(1, dog_channels_, x.size(1) - dog_channels_)}, 1);
}

// ---------------------------------------------------------------------------
TunedNormalizationImpl::TunedNormalizationImpl(int64_t c) : channels_(c) {
  at::Tensor i = at::arange(c, at::kLong).view({c, 1});
  at::Tensor j = at::arange(c, at::kLong).view({1, c});
  distances = register_buffer("distances",
                              (at::remainder(j - i, c) - c / 2).abs().to(at::kFloat));
  sigmas = register_parameter("sigmas", at::rand({c}) + c / 8.0);
}

at::Tensor TunedNormalizationImpl::Weights() const {
  at::Tensor s = sigmas.clamp_min(0.5).view({1, channels_});  // sigma_j, column-wise
  at::Tensor g = at::exp(-distances.pow(2) / (2 * s.pow(2))) / (std::sqrt(2 * kPi) * s);
  return g / g.sum(0, true);
}

at::Tensor TunedNormalizationImpl::forward(const at::Tensor& x) {
  at::Tensor w = Weights().view({channels_, channels_, 1, 1});
  return x / (at::conv2d(x, w) + 1.0);
}

// ---------------------------------------------------------------------------
DivisiveNormalizationImpl::DivisiveNormalizationImpl(int64_t c, int64_t q) : q_(q) {
  at::Tensor g = at::arange(1, q + 1, at::kFloat);
  x_coords = register_buffer("x_coords", g.view({1, q}).expand({q, q}).contiguous());
  y_coords = register_buffer("y_coords", g.view({q, 1}).expand({q, q}).contiguous());
  A = register_parameter("A", at::rand({c, c, 1, 1}));
  rho = register_parameter("rho", at::rand({c, c, 1, 1}) + 1.0);
  sigma = register_parameter("sigma", at::rand({c, c, 1, 1}) + 1.0);
  theta = register_parameter("theta", at::rand({c, c, 1, 1}) * (2 * kPi));
  v = register_parameter("v", at::randn({c, c, 1, 1}) + double(q / 2));
  w = register_parameter("w", at::randn({c, c, 1, 1}) + double(q / 2));
  bias = register_parameter("bias", at::rand({1}) + 1.0);
}

at::Tensor DivisiveNormalizationImpl::Kernels() const {
  at::Tensor xr = x_coords * at::cos(theta) + y_coords * at::sin(theta);
  at::Tensor yr = -x_coords * at::sin(theta) + y_coords * at::cos(theta);
  at::Tensor d = (xr - v).pow(2) / rho.pow(2).clamp_min(0.1) + (yr - w).pow(2) / sigma.pow(2).clamp_min(0.1);
  return (A / (2 * kPi * rho * sigma).clamp_min(0.1)).abs() * at::exp(-0.5 * d);
}

at::Tensor DivisiveNormalizationImpl::forward(const at::Tensor& x) {
  return x / (at::conv2d(x, Kernels(), {}, 1, q_ / 2) + bias.abs());
}

// ---------------------------------------------------------------------------
PolarTransformImpl::PolarTransformImpl(const PolarTransformOptions& o) : options_(o) {
  std::vector<double> edges = o.radius_edges;
  if (edges.empty()) {
    const double scale = double(o.in_height) / 32.0;
    for (double e : {0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 16., 18., 20., 23.}) {
      edges.push_back(e * scale);
    }
  }
  rings_ = static_cast<int64_t>(edges.size()) - 1;
  const int64_t h = o.in_height, w = o.in_width, a = o.angle_sectors;
  const int64_t ch = h / 2, cw = w / 2;
  at::Tensor xs = (at::arange(w, at::kDouble) - double(cw)).view({1, w}).expand({h, w});
  at::Tensor ys = (double(ch) - at::arange(h, at::kDouble)).view({h, 1}).expand({h, w});
  at::Tensor dist = at::sqrt(xs * xs + ys * ys);
  at::Tensor ang = at::atan2(ys, xs);
  ang = at::where(ys < 0, ang + 2 * kPi, ang);
  std::vector<at::Tensor> all;
  for (int64_t r = 0; r < rings_; ++r) {
    at::Tensor in_ring = (dist >= edges[r]) & (dist < edges[r + 1]);
    std::vector<at::Tensor> ring;
    for (int64_t s = 0; s < a; ++s) {
      const double lo = 2 * kPi * s / a, hi = 2 * kPi * (s + 1) / a;
      ring.push_back((in_ring & (ang >= lo) & (ang < hi)).to(at::kDouble));
    }
    at::Tensor m = at::stack(ring);  // [a, h, w]
    at::Tensor nonempty = m.sum({1, 2}) > 0;
    const int64_t n_nonempty = nonempty.sum().item<int64_t>();
    if (o.interpolate && edges[r] <= double(std::min(ch, cw)) && n_nonempty > 0 && n_nonempty < a) {
      at::Tensor nz = m.index_select(0, at::nonzero(nonempty).squeeze(1));  // [M, h, w]
      m = at::upsample_linear1d(nz.permute({1, 2, 0}), {a}, false).permute({2, 0, 1});
      nonempty = m.sum({1, 2}) > 0;
    }
    if (o.outer_fill == "nearest") {
      std::vector<int64_t> live;
      for (int64_t s = 0; s < a; ++s) {
        if (nonempty[s].item<bool>()) live.push_back(s);
      }
      if (!live.empty() && static_cast<int64_t>(live.size()) < a) {
        at::Tensor filled = m.clone();
        for (int64_t s = 0; s < a; ++s) {
          if (nonempty[s].item<bool>()) continue;
          int64_t best = live[0], best_d = a;
          for (int64_t l : live) {
            const int64_t d = std::min((s - l + a) % a, (l - s + a) % a);
            if (d < best_d) {
              best_d = d;
              best = l;
            }
          }
          filled[s] = m[best];
        }
        m = filled;
      }
    }
    all.push_back(m);
  }
  at::Tensor masks_d = at::cat(all).view({rings_ * a, h * w});
  at::Tensor c = masks_d.sum(1);
  masks = register_buffer("masks", masks_d.to(at::kFloat));
  counts = register_buffer("counts", at::where(c == 0, at::ones_like(c), c).to(at::kFloat));
}

at::Tensor PolarTransformImpl::PolarMap(const at::Tensor& x) const {
  const int64_t n = x.size(0), c = x.size(1);
  at::Tensor flat = x.reshape({n * c, -1});
  at::Tensor p = at::matmul(flat, masks.t()) / counts;
  return p.view({n, c, rings_, options_.angle_sectors});
}

at::Tensor PolarTransformImpl::forward(const at::Tensor& x) {
  at::Tensor p = at::reflection_pad2d(PolarMap(x), {1, 1, 0, 0});
  return at::upsample_bilinear2d(p, {options_.out_height, options_.out_width}, false);
}

// ---------------------------------------------------------------------------
std::vector<std::string> V1VariantNames() {
  return {"resnet50", "center_surround", "local_rf", "div_norm", "tuned_norm", "cortical_magnification",
          "composite_a", "composite_b", "composite_c", "composite_d", "composite_e", "composite_f",
          "composite_g"};
}

absl::StatusOr<V1ResNetOptions> V1VariantOptions(const std::string& v) {
  V1ResNetOptions o;  // a fresh value: nothing carries over between calls
  o.variant = v;
  auto set = [&](std::vector<int> dog, int lc, bool lc_dropout, const char* norm, bool polar) {
    o.dog_blocks = std::move(dog);
    o.lc_block = lc;
    o.lc_dropout = lc_dropout;
    o.norm = norm;
    o.polar = polar;
  };
  if (v == "resnet50") set({}, -1, false, "none", false);
  else if (v == "center_surround") set({0, 1, 2}, -1, false, "none", false);
  else if (v == "local_rf") set({}, 2, true, "none", false);
  else if (v == "div_norm") set({}, -1, false, "standard", false);
  else if (v == "tuned_norm") set({}, -1, false, "tuned", false);
  else if (v == "cortical_magnification") set({}, -1, false, "none", true);
  else if (v == "composite_a") set({0, 1}, 2, false, "tuned", true);
  else if (v == "composite_b") set({}, 2, false, "tuned", true);
  else if (v == "composite_c") set({0, 1}, 2, false, "none", true);
  else if (v == "composite_d") set({0, 1}, 2, false, "tuned", false);
  else if (v == "composite_e") set({}, -1, false, "tuned", true);
  else if (v == "composite_f") set({}, 2, false, "none", true);
  else if (v == "composite_g") set({}, 2, false, "tuned", false);
  else {
    return absl::InvalidArgumentError(absl::StrCat("model.variant: unknown variant '", v, "' (known: ",
                                                   absl::StrJoin(V1VariantNames(), ", "), ")"));
  }
  return o;
}

absl::StatusOr<V1ResNetOptions> ParseV1ResNetOptions(const nlohmann::json& m, int64_t num_classes) {
  const std::string p = "model";
  absl::Status s = spec::CheckKeys(
      m, {"variant", "image_size", "width_divisor", "blocks", "depth", "dog_mode", "polar_outer_fill"}, p);
  if (!s.ok()) return s;
  std::string variant = "resnet50";
  if (!(s = spec::GetEnum(m, "variant", V1VariantNames(), p, &variant)).ok()) return s;
  auto o = V1VariantOptions(variant);
  if (!o.ok()) return o.status();
  o->num_classes = num_classes;
  std::vector<double> blocks;
  std::string depth = "resnet50";
  if (!(s = spec::GetEnum(m, "depth", {"resnet50", "mini"}, p, &depth)).ok()) return s;
  if (depth == "mini") o->blocks = {3, 1, 1, 1};
  for (auto st : {spec::GetInt(m, "image_size", 32, 1024, p, &o->image_size),
                  spec::GetInt(m, "width_divisor", 1, 16, p, &o->width_divisor),
                  spec::GetEnum(m, "dog_mode", {"clean", "reference"}, p, &o->dog_mode),
                  spec::GetEnum(m, "polar_outer_fill", {"nearest", "zero"}, p, &o->polar_outer_fill),
                  spec::GetDoubleList(m, "blocks", 1, 64, 4, p, &blocks)}) {
    if (!st.ok()) return st;
  }
  if (!blocks.empty()) {
    o->blocks.clear();
    for (double b : blocks) {
      if (b != std::floor(b)) return absl::InvalidArgumentError(p + ".blocks: must be 4 integers in [1, 64]");
      o->blocks.push_back(static_cast<int64_t>(b));
    }
  }
  if (o->image_size % 32 != 0) return absl::InvalidArgumentError(p + ".image_size: must be a multiple of 32");
  if (64 % o->width_divisor != 0 || 64 / o->width_divisor < 4) {
    return absl::InvalidArgumentError(p + ".width_divisor: must divide 64 and leave at least 4 channels");
  }
  int max_needed = o->lc_block;
  for (int b : o->dog_blocks) max_needed = std::max(max_needed, b);
  if (max_needed >= o->blocks[0]) {
    return absl::InvalidArgumentError(absl::StrCat(p, ".blocks: variant '", variant, "' needs at least ",
                                                   max_needed + 1, " blocks in layer1"));
  }
  return o;
}

// ---------------------------------------------------------------------------
namespace {
torch::nn::Conv2d Conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  auto c = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
  torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
  return c;
}
}  // namespace

V1BottleneckImpl::V1BottleneckImpl(int64_t in, int64_t planes, int64_t stride, bool use_dog, bool use_lc,
                                   bool lc_dropout, const std::string& norm, int64_t spatial,
                                   const V1ResNetOptions& o)
    : lc_dropout_(lc_dropout) {
  const int64_t width = planes, out = planes * 4;
  conv1 = register_module("conv1", Conv(in, width, 1, 1, 0));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(width));
  if (use_lc) {
    LocallyConnected2dOptions lo;
    lo.in_channels = lo.out_channels = width;
    lo.in_height = lo.in_width = spatial;
    lo.kernel = 3;
    lo.stride = stride;
    lo.padding = 1;
    lo.bias = false;
    lo.init = "normal";
    lc2 = register_module("conv2", LocallyConnected2d(lo));
  } else {
    conv2 = register_module("conv2", Conv(width, width, 3, stride, 1));
    if (use_dog) dog = register_module("dog", DoGLayer(width / 4, 2, o.dog_mode));
  }
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(width));
  conv3 = register_module("conv3", Conv(width, out, 1, 1, 0));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(out));
  if (stride != 1 || in != out) {
    downsample = register_module("downsample",
                                 torch::nn::Sequential(Conv(in, out, 1, stride, 0), torch::nn::BatchNorm2d(out)));
  }
  if (norm == "tuned") tuned = register_module("dn", TunedNormalization(out));
  if (norm == "standard") standard = register_module("dn", DivisiveNormalization(out, 3));
}

at::Tensor V1BottleneckImpl::forward(const at::Tensor& x) {
  at::Tensor y = at::relu(bn1->forward(conv1->forward(x)));
  if (!lc2.is_empty()) {
    if (lc_dropout_) y = at::feature_dropout(y, 0.5, is_training());
    y = lc2->forward(y);
  } else {
    y = conv2->forward(y);
    if (!dog.is_empty()) y = dog->forward(y);
  }
  y = at::relu(bn2->forward(y));
  y = bn3->forward(conv3->forward(y));
  y = at::relu(y + (downsample.is_empty() ? x : downsample->forward(x)));
  if (!tuned.is_empty()) y = tuned->forward(y);
  if (!standard.is_empty()) y = standard->forward(y);
  return y;
}

V1ResNetImpl::V1ResNetImpl(const V1ResNetOptions& o) : VisionModel("V1ResNet"), options_(o) {
  const int64_t base = 64 / o.width_divisor;
  conv1 = register_module("conv1", Conv(3, base, 7, 2, 3));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(base));
  const int64_t s2 = o.image_size / 2, s4 = o.image_size / 4;
  if (o.polar) {
    PolarTransformOptions po;
    po.in_height = po.in_width = s2;
    po.out_height = po.out_width = s4;
    po.outer_fill = o.polar_outer_fill;
    polar = register_module("polar", PolarTransform(po));
    description_ = "stem=polar";
  } else {
    description_ = "stem=maxpool";
  }
  int64_t in = base, spatial = s4;
  const int64_t planes[] = {base, base * 2, base * 4, base * 8};
  for (int st = 0; st < 4; ++st) {
    torch::nn::Sequential seq;
    for (int64_t b = 0; b < o.blocks[st]; ++b) {
      const int64_t stride = (st > 0 && b == 0) ? 2 : 1;
      bool use_dog = false, use_lc = false;
      std::string norm = "none";
      if (st == 0) {
        for (int d : o.dog_blocks) use_dog = use_dog || d == b;
        use_lc = o.lc_block == b;
        norm = o.norm;
        absl::StrAppend(&description_, " layer1.", b, ".conv2=", use_lc ? (o.lc_dropout ? "dropout+lc" : "lc")
                                                                          : (use_dog ? "conv+dog" : "conv"),
                        ",norm=", norm);
      }
      seq->push_back(V1Bottleneck(in, planes[st], stride, use_dog, use_lc, st == 0 && o.lc_dropout, norm,
                                  spatial, o));
      in = planes[st] * 4;
      if (stride == 2) spatial = (spatial + 1) / 2;
    }
    stages_.push_back(register_module(absl::StrCat("layer", st + 1), seq));
  }
  feature_dim_ = in;
  if (o.num_classes > 0) fc = register_module("fc", torch::nn::Linear(in, o.num_classes));
}

const std::vector<std::string>& V1ResNetImpl::LayerNames() const {
  static const std::vector<std::string> k = {"layer1", "layer2", "layer3", "layer4"};
  return k;
}

ModelOutput V1ResNetImpl::Forward(const at::Tensor& x) { return ForwardUnit(ImageNetToUnit(x)); }

ModelOutput V1ResNetImpl::ForwardUnit(const at::Tensor& x) {
  ModelOutput out;
  at::Tensor h = at::relu(bn1->forward(conv1->forward((x - 0.5) / 0.5)));
  h = polar.is_empty() ? at::max_pool2d(h, {3, 3}, {2, 2}, {1, 1}) : polar->forward(h);
  for (auto& s : stages_) {
    h = s->forward(h);
    out.layers.push_back(h);
  }
  out.features = at::adaptive_avg_pool2d(h, {1, 1}).flatten(1);
  if (!fc.is_empty()) out.logits = fc->forward(out.features);
  return out;
}

absl::StatusOr<std::shared_ptr<VisionModel>> MakeV1ResNetModel(const nlohmann::json& model_spec,
                                                               int64_t num_classes) {
  auto o = ParseV1ResNetOptions(model_spec, num_classes);
  if (!o.ok()) return o.status();
  return std::shared_ptr<VisionModel>(std::make_shared<V1ResNetImpl>(*o));
}

}  // namespace topolab::science
