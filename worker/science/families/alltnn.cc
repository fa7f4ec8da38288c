// All-TNN: locally connected layers, the sheet layout, the smoothness loss
// and the network with its CNN/LCN controls.
#include "worker/science/families/alltnn.h"

#include <cmath>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "worker/science/families/preprocess.h"
#include "worker/science/families/spec_util.h"

namespace topolab::science {

int64_t LcOutputSide(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  const int64_t span = in + 2 * padding - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

LocallyConnected2dImpl::LocallyConnected2dImpl(const LocallyConnected2dOptions& o) : options_(o) {
  out_h_ = LcOutputSide(o.in_height, o.kernel, o.stride, o.padding);
  out_w_ = LcOutputSide(o.in_width, o.kernel, o.stride, o.padding);
  if (out_h_ < 1 || out_w_ < 1) {
    throw std::invalid_argument(absl::StrCat("LocallyConnected2d: input ", o.in_height, "x",
                                             o.in_width, " too small for kernel ", o.kernel));
  }
  const int64_t p = out_h_ * out_w_, d = o.in_channels * o.kernel * o.kernel;
  at::Tensor w = at::empty({p, d, o.out_channels});
  if (o.init == "normal") {
    w.normal_(0.0, 1.0);
  } else if (o.init == "glorot_keras") {  // Keras fans for a rank-3 kernel: x P
    const double b = std::sqrt(6.0 / double((d + o.out_channels) * p));
    w.uniform_(-b, b);
  } else {  // glorot_conv: fans of the equivalent conv
    const double k2 = double(o.kernel * o.kernel);
    const double b = std::sqrt(6.0 / (k2 * o.in_channels + k2 * o.out_channels));
    w.uniform_(-b, b);
  }
  weight = register_parameter("weight", w);
  if (o.bias) bias = register_parameter("bias", at::zeros({out_h_, out_w_, o.out_channels}));
}

at::Tensor LocallyConnected2dImpl::ForwardWith(const at::Tensor& x, const at::Tensor& w,
                                               const at::Tensor& b) const {
  const auto& o = options_;
  // [N, D, P] with D ordered (Cin, kh, kw) and P row-major over (Hout, Wout).
  at::Tensor cols = at::im2col(x, {o.kernel, o.kernel}, {1, 1}, {o.padding, o.padding},
                               {o.stride, o.stride});
  at::Tensor y = at::bmm(cols.permute({2, 0, 1}), w);  // [P, N, Cout]
  y = y.permute({1, 2, 0}).reshape({x.size(0), o.out_channels, out_h_, out_w_});
  if (b.defined()) y = y + b.permute({2, 0, 1}).unsqueeze(0);
  return y;
}

at::Tensor LocallyConnected2dImpl::forward(const at::Tensor& x) {
  return ForwardWith(x, weight, bias);
}

std::pair<int64_t, int64_t> SheetTile(int64_t channels) {
  int64_t c0 = 1;
  for (int64_t d = 1; d * d <= channels; ++d) {
    if (channels % d == 0) c0 = d;
  }
  return {c0, channels / c0};
}

at::Tensor ChannelsToSheet(const at::Tensor& x) {
  const int64_t nd = x.dim();
  const int64_t c = x.size(nd - 3), h = x.size(nd - 2), w = x.size(nd - 1);
  auto [c0, c1] = SheetTile(c);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end() - 3);
  out_shape.push_back(h * c0);
  out_shape.push_back(w * c1);
  // (a, b, h, w) with ch = a*c1 + b  ->  (h, a, w, b)
  return x.reshape({-1, c0, c1, h, w}).permute({0, 3, 1, 4, 2}).reshape(out_shape);
}

at::Tensor SheetToChannels(const at::Tensor& s, int64_t channels) {
  const int64_t nd = s.dim();
  auto [c0, c1] = SheetTile(channels);
  const int64_t h = s.size(nd - 2) / c0, w = s.size(nd - 1) / c1;
  if (h * c0 != s.size(nd - 2) || w * c1 != s.size(nd - 1)) {
    throw std::invalid_argument("SheetToChannels: sheet sides not divisible by the tile");
  }
  std::vector<int64_t> out_shape(s.sizes().begin(), s.sizes().end() - 2);
  out_shape.push_back(channels);
  out_shape.push_back(h);
  out_shape.push_back(w);
  return s.reshape({-1, h, c0, w, c1}).permute({0, 2, 4, 1, 3}).reshape(out_shape);
}

at::Tensor SheetKernelVectors(const at::Tensor& weight, const at::Tensor& bias, int64_t out_h,
                              int64_t out_w) {
  const int64_t d = weight.size(1), c = weight.size(2);
  // [P, D, C] -> [D, C, H, W]: each "row" d is one kernel entry over all units.
  at::Tensor v = weight.permute({1, 2, 0}).reshape({d, c, out_h, out_w});
  if (bias.defined()) v = at::cat({v, bias.permute({2, 0, 1}).unsqueeze(0)}, 0);
  return ChannelsToSheet(v).permute({1, 2, 0});  // [Hs, Ws, D']
}

at::Tensor SheetSmoothnessLoss(const at::Tensor& vectors, bool circular, int neighbourhood) {
  at::Tensor v = vectors / vectors.norm(2, {-1}, true).clamp_min(1e-12);
  auto sim = [&](int64_t dr, int64_t dc) {
    // similarity of unit (r, c) with unit (r + dr, c + dc)
    at::Tensor n = v;
    if (dr != 0) n = n.roll({-dr}, {0});
    if (dc != 0) n = n.roll({-dc}, {1});
    at::Tensor s = (v * n).sum(-1);  // [Hs, Ws]
    if (!circular) {  // drop pairs that wrapped
      const int64_t hs = s.size(0), ws = s.size(1);
      s = s.narrow(0, 0, hs - std::abs(dr));
      s = dc >= 0 ? s.narrow(1, 0, ws - dc) : s.narrow(1, -dc, ws + dc);
    }
    return s.mean();
  };
  at::Tensor mean_sim;
  if (neighbourhood == 8) {
    mean_sim = (sim(1, 0) + sim(0, 1) + sim(1, 1) + sim(1, -1)) / 4.0;
  } else {
    mean_sim = (sim(1, 0) + sim(0, 1)) / 2.0;
  }
  return (1.0 - mean_sim) / 2.0;
}

std::vector<AllTnnLayerSpec> AllTnnFullLayers() {
  return {{7, 3, 64, true}, {3, 1, 81, false}, {3, 1, 81, true},
          {3, 1, 256, false}, {3, 1, 256, true}, {3, 1, 2500, false}};
}

std::vector<AllTnnLayerSpec> AllTnnMiniLayers() {
  return {{5, 2, 16, true}, {3, 1, 16, false}, {3, 1, 25, false}};
}

absl::StatusOr<AllTnnOptions> ParseAllTnnOptions(const nlohmann::json& m, int64_t num_classes) {
  const std::string p = "model";
  AllTnnOptions o;
  o.num_classes = num_classes;
  absl::Status s = spec::CheckKeys(
      m,
      {"preset", "image_size", "layers", "layer_type", "alpha", "layer_factors", "circular",
       "neighbourhood", "smoothness_bias", "l2", "norm", "norm_first", "dropout", "init",
       "energy_post"},
      p);
  if (!s.ok()) return s;
  std::string preset = "full";
  int64_t nb = o.neighbourhood;
  if (!(s = spec::GetEnum(m, "preset", {"full", "mini"}, p, &preset)).ok()) return s;
  o.layers = preset == "full" ? AllTnnFullLayers() : AllTnnMiniLayers();
  o.image_size = preset == "full" ? 150 : 32;
  for (auto st : {spec::GetInt(m, "image_size", 2, 4096, p, &o.image_size),
                  spec::GetEnum(m, "layer_type", {"lc", "conv"}, p, &o.layer_type),
                  spec::GetDouble(m, "alpha", 0, 1e9, p, &o.alpha),
                  spec::GetBool(m, "circular", p, &o.circular),
                  spec::GetInt(m, "neighbourhood", 4, 8, p, &nb),
                  spec::GetBool(m, "smoothness_bias", p, &o.smoothness_bias),
                  spec::GetDouble(m, "l2", 0, 1e3, p, &o.l2),
                  spec::GetEnum(m, "norm", {"layer", "none"}, p, &o.norm),
                  spec::GetBool(m, "norm_first", p, &o.norm_first),
                  spec::GetDouble(m, "dropout", 0, 0.99, p, &o.dropout),
                  spec::GetEnum(m, "init", {"glorot_conv", "glorot_keras"}, p, &o.init),
                  spec::GetEnum(m, "energy_post", {"activation", "normalized"}, p, &o.energy_post)}) {
    if (!st.ok()) return st;
  }
  if (nb != 4 && nb != 8) return absl::InvalidArgumentError(p + ".neighbourhood: must be 4 or 8");
  o.neighbourhood = static_cast<int>(nb);
  if (m.is_object() && m.contains("layers")) {
    const auto& l = m["layers"];
    if (!l.is_array() || l.empty()) return absl::InvalidArgumentError(p + ".layers: must be a non-empty list");
    o.layers.clear();
    for (size_t i = 0; i < l.size(); ++i) {
      const std::string lp = absl::StrCat(p, ".layers[", i, "]");
      if (!l[i].is_object()) return absl::InvalidArgumentError(lp + ": must be a mapping");
      for (auto it = l[i].begin(); it != l[i].end(); ++it) {
        if (it.key() != "kernel" && it.key() != "stride" && it.key() != "channels" && it.key() != "pool") {
          return absl::InvalidArgumentError(absl::StrCat(lp, ".", it.key(), ": unknown key (known: kernel, stride, channels, pool)"));
        }
      }
      AllTnnLayerSpec ls;
      for (auto st : {spec::GetInt(l[i], "kernel", 1, 64, lp, &ls.kernel),
                      spec::GetInt(l[i], "stride", 1, 64, lp, &ls.stride),
                      spec::GetInt(l[i], "channels", 1, 100000, lp, &ls.channels),
                      spec::GetBool(l[i], "pool", lp, &ls.pool)}) {
        if (!st.ok()) return st;
      }
      o.layers.push_back(ls);
    }
  }
  o.layer_factors.assign(o.layers.size(), 1.0);
  if (!(s = spec::GetDoubleList(m, "layer_factors", 0, 1e9, static_cast<int>(o.layers.size()), p,
                                &o.layer_factors)).ok()) {
    return s;
  }
  int64_t side = o.image_size;
  for (size_t i = 0; i < o.layers.size(); ++i) {
    side = LcOutputSide(side, o.layers[i].kernel, o.layers[i].stride, 0);
    if (o.layers[i].pool) side /= 2;
    if (side < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          p, ".layers[", i, "]: output grid is empty for image_size ", o.image_size));
    }
  }
  return o;
}

AllTnnImpl::AllTnnImpl(const AllTnnOptions& options) : VisionModel("AllTnn"), options_(options) {
  int64_t c = 3, h = options.image_size, w = options.image_size;
  for (size_t l = 0; l < options.layers.size(); ++l) {
    const AllTnnLayerSpec& s = options.layers[l];
    AllTnnLayerGeometry g;
    g.in_channels = c;
    g.in_h = h;
    g.in_w = w;
    g.out_channels = s.channels;
    g.out_h = LcOutputSide(h, s.kernel, s.stride, 0);
    g.out_w = LcOutputSide(w, s.kernel, s.stride, 0);
    auto [c0, c1] = SheetTile(s.channels);
    g.sheet_h = g.out_h * c0;
    g.sheet_w = g.out_w * c1;
    geometry_.push_back(g);
    layer_names_.push_back(absl::StrCat("layer", l));
    if (options.layer_type == "conv") {
      auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(c, s.channels, s.kernel).stride(s.stride));
      const double b = std::sqrt(6.0 / double(s.kernel * s.kernel * (c + s.channels)));
      {
        at::NoGradGuard ng;
        conv->weight.uniform_(-b, b);  // Keras Conv2D: glorot_uniform, zero bias
        conv->bias.zero_();
      }
      conv_.push_back(register_module(absl::StrCat("conv", l), conv));
    } else {
      LocallyConnected2dOptions lo;
      lo.in_channels = c;
      lo.out_channels = s.channels;
      lo.in_height = h;
      lo.in_width = w;
      lo.kernel = s.kernel;
      lo.stride = s.stride;
      lo.init = options.init;
      lc_.push_back(register_module(absl::StrCat("lc", l), LocallyConnected2d(lo)));
    }
    if (options.norm == "layer") {
      norm_gain_.push_back(register_parameter(absl::StrCat("norm", l, "_weight"), at::ones({s.channels})));
      norm_bias_.push_back(register_parameter(absl::StrCat("norm", l, "_bias"), at::zeros({s.channels})));
    }
    c = s.channels;
    h = g.out_h;
    w = g.out_w;
    if (s.pool) {
      h /= 2;
      w /= 2;
    }
  }
  feature_dim_ = c * h * w;
  if (options.num_classes > 0) {
    readout_ = register_module("readout", torch::nn::Linear(feature_dim_, options.num_classes));
  }
}

at::Tensor AllTnnImpl::LayerWeight(size_t l) const {
  return options_.layer_type == "conv" ? conv_[l]->weight : lc_[l]->weight;
}

at::Tensor AllTnnImpl::LayerForward(size_t l, const at::Tensor& x, bool abs_no_bias) const {
  const AllTnnLayerSpec& s = options_.layers[l];
  if (options_.layer_type == "conv") {
    const auto& conv = conv_[l];
    if (abs_no_bias) return at::conv2d(x, conv->weight.abs(), {}, s.stride);
    return at::conv2d(x, conv->weight, conv->bias, s.stride);
  }
  const auto& lc = lc_[l];
  if (abs_no_bias) return lc->ForwardWith(x, lc->weight.abs(), at::Tensor());
  return lc->ForwardWith(x, lc->weight, lc->bias);
}

at::Tensor AllTnnImpl::Normalize(size_t l, const at::Tensor& x) const {
  if (options_.norm != "layer") return x;
  // LayerNorm over channels at each position (Keras axis=-1, epsilon 1e-3).
  at::Tensor y = at::layer_norm(x.permute({0, 2, 3, 1}), {x.size(1)}, norm_gain_[l], norm_bias_[l], 1e-3);
  return y.permute({0, 3, 1, 2});
}

ModelOutput AllTnnImpl::Forward(const at::Tensor& x) { return ForwardUnit(ImageNetToUnit(x)); }

ModelOutput AllTnnImpl::ForwardUnit(const at::Tensor& x) {
  ModelOutput out;
  at::Tensor h = x * 2.0 - 1.0;
  for (size_t l = 0; l < options_.layers.size(); ++l) {
    at::Tensor y = LayerForward(l, h, false);
    if (options_.norm_first) {
      y = at::relu(Normalize(l, y));
    } else {
      y = Normalize(l, at::relu(y));
    }
    if (options_.dropout > 0) y = at::dropout(y, options_.dropout, is_training());
    out.layers.push_back(y);
    h = options_.layers[l].pool ? at::max_pool2d(y, {2, 2}) : y;
  }
  out.features = h.flatten(1);
  if (!readout_.is_empty()) out.logits = readout_->forward(out.features);
  return out;
}

std::vector<at::Tensor> AllTnnImpl::LayerSmoothness() {
  std::vector<at::Tensor> r;
  for (size_t l = 0; l < options_.layers.size(); ++l) {
    if (options_.layer_type == "conv") {
      r.push_back(at::Tensor());
      continue;
    }
    const auto& lc = lc_[l];
    at::Tensor v = SheetKernelVectors(lc->weight, options_.smoothness_bias ? lc->bias : at::Tensor(),
                                      lc->out_height(), lc->out_width());
    r.push_back(SheetSmoothnessLoss(v, options_.circular, options_.neighbourhood));
  }
  return r;
}

at::Tensor AllTnnImpl::AuxiliaryLoss() {
  at::Tensor total = at::zeros({}, LayerWeight(0).options());
  if (options_.layer_type == "lc" && options_.alpha > 0) {
    std::vector<at::Tensor> s = LayerSmoothness();
    for (size_t l = 0; l < s.size(); ++l) {
      if (options_.layer_factors[l] != 0) total = total + options_.alpha * options_.layer_factors[l] * s[l];
    }
  }
  if (options_.l2 > 0) {
    for (size_t l = 0; l < options_.layers.size(); ++l) total = total + options_.l2 * LayerWeight(l).pow(2).sum();
  }
  return total;
}

std::vector<at::Tensor> AllTnnImpl::TransmissionEnergy(const at::Tensor& x) {
  at::NoGradGuard ng;
  std::vector<at::Tensor> energy;
  at::Tensor h = x * 2.0 - 1.0;
  for (size_t l = 0; l < options_.layers.size(); ++l) {
    at::Tensor pre = LayerForward(l, h.abs(), /*abs_no_bias=*/true);
    at::Tensor y = LayerForward(l, h, false);
    at::Tensor act, block;
    if (options_.norm_first) {
      block = act = at::relu(Normalize(l, y));
    } else {
      act = at::relu(y);
      block = Normalize(l, act);
    }
    at::Tensor post = (options_.energy_post == "normalized" ? block : act).abs();
    energy.push_back(post.sum(0) / 3.0 + pre.sum(0) * (2.0 / 3.0));
    h = options_.layers[l].pool ? at::max_pool2d(block, {2, 2}) : block;
  }
  return energy;
}

absl::StatusOr<std::shared_ptr<VisionModel>> MakeAllTnnModel(const nlohmann::json& model_spec,
                                                             int64_t num_classes) {
  auto o = ParseAllTnnOptions(model_spec, num_classes);
  if (!o.ok()) return o.status();
  return std::shared_ptr<VisionModel>(std::make_shared<AllTnnImpl>(*o));
}

}  // namespace topolab::science
