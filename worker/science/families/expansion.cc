// Expansion model: fixed curvature bank + seeded random convolutions.
#include "worker/science/families/expansion.h"

#include <cmath>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "worker/science/families/preprocess.h"
#include "worker/science/families/spec_util.h"

namespace topolab::science {
namespace {

constexpr double kPi = 3.14159265358979323846;

// One banana filter on the size x size grid (see CurvatureFilterBank).
at::Tensor BananaFilter(double s, double f, double theta, double c, const CurvatureFilterOptions& o) {
  const int n = o.size;
  const int half = n / 2;
  at::Tensor out = at::empty({n, n}, at::kDouble);
  auto a = out.accessor<double, 2>();
  const double bias = std::exp(-o.sigma_x / 2.0);
  for (int r = 0; r < n; ++r) {
    for (int col = 0; col < n; ++col) {
      double x, y;
      if (o.grid == "reference") {  // transposed meshgrid of the reference code
        x = r - half;
        y = half - col;
      } else {
        x = col - half;
        y = half - r;
      }
      const double xc = x * std::cos(theta) + y * std::sin(theta);
      const double xs = -x * std::sin(theta) + y * std::cos(theta);
      const double k = xc + c * xs * xs;
      const double k2 = (k / o.sigma_x) * (k / o.sigma_x) + (xs / (o.sigma_y * s)) * (xs / (o.sigma_y * s));
      const double g = std::exp(-k2 * f * f / 2.0);
      a[r][col] = o.gamma * g * (std::cos(f * k) - bias);  // Re(G * (e^{ifk} - bias))
    }
  }
  return out - out.mean();
}

std::pair<int64_t, int64_t> Fans(const at::Tensor& w) {
  const int64_t rf = w.size(2) * w.size(3);
  return {w.size(1) * rf, w.size(0) * rf};
}

// Fills `w` in place with torch's default-argument initialiser `init`,
// drawing from `gen` only.
void InitWeight(at::Tensor& w, const std::string& init, at::Generator& gen) {
  auto [fan_in, fan_out] = Fans(w);
  if (init == "kaiming_uniform") {  // a = 0, fan_in, leaky_relu gain sqrt(2)
    const double b = std::sqrt(6.0 / fan_in);
    w.uniform_(-b, b, gen);
  } else if (init == "kaiming_normal") {
    w.normal_(0.0, std::sqrt(2.0 / fan_in), gen);
  } else if (init == "xavier_uniform") {
    const double b = std::sqrt(6.0 / (fan_in + fan_out));
    w.uniform_(-b, b, gen);
  } else if (init == "xavier_normal") {
    w.normal_(0.0, std::sqrt(2.0 / (fan_in + fan_out)), gen);
  } else if (init == "uniform") {
    w.uniform_(0.0, 1.0, gen);
  } else if (init == "normal") {
    w.normal_(0.0, 1.0, gen);
  } else if (init == "orthogonal") {  // as torch.nn.init.orthogonal_ (gain 1)
    const int64_t rows = w.size(0), cols = w.numel() / rows;
    at::Tensor flat = at::empty({rows, cols}, at::kFloat).normal_(0.0, 1.0, gen);
    if (rows < cols) flat = flat.t();
    auto qr = at::linalg_qr(flat);
    at::Tensor q = std::get<0>(qr) * at::sign(at::diagonal(std::get<1>(qr)));
    if (rows < cols) q = q.t();
    w.copy_(q.reshape(w.sizes()));
  } else {
    throw std::invalid_argument("unknown init " + init);
  }
}

}  // namespace

at::Tensor CurvatureFilterBank(const CurvatureFilterOptions& options) {
  std::vector<double> curves = options.curvatures;
  if (curves.empty()) {  // logspace(-2, -0.1, 3)
    for (int i = 0; i < 3; ++i) curves.push_back(std::pow(10.0, -2.0 + i * (1.9 / 2.0)));
  }
  std::vector<at::Tensor> filters;
  for (double c : curves)
    for (double s : options.gaussian_sizes)
      for (int i = 0; i < options.n_orientations; ++i)
        for (double f : options.frequencies)
          filters.push_back(BananaFilter(s, f, 2.0 * kPi * i / options.n_orientations, c, options));
  return at::stack(filters).unsqueeze(1).to(at::kFloat);
}

absl::StatusOr<ExpansionOptions> ParseExpansionOptions(const nlohmann::json& m) {
  const std::string p = "model";
  ExpansionOptions o;
  absl::Status s = spec::CheckKeys(
      m,
      {"image_size", "filters_2", "filters_3", "filters_4", "filters_5", "init", "nonlinearity",
       "layer1", "random_filters_1", "curvature_grid", "normalize", "seed", "readout_norm"},
      p);
  if (!s.ok()) return s;
  int64_t seed = static_cast<int64_t>(o.seed);
  for (auto st : {spec::GetInt(m, "image_size", 142, 4096, p, &o.image_size),
                  spec::GetInt(m, "filters_2", 1, 1000000, p, &o.filters_2),
                  spec::GetInt(m, "filters_3", 1, 1000000, p, &o.filters_3),
                  spec::GetInt(m, "filters_4", 1, 1000000, p, &o.filters_4),
                  spec::GetInt(m, "filters_5", 1, 1000000, p, &o.filters_5),
                  spec::GetInt(m, "random_filters_1", 1, 100000, p, &o.random_filters_1),
                  spec::GetInt(m, "seed", 0, INT64_MAX, p, &seed),
                  spec::GetEnum(m, "init",
                                {"kaiming_uniform", "kaiming_normal", "xavier_uniform",
                                 "xavier_normal", "orthogonal", "uniform", "normal"},
                                p, &o.init),
                  spec::GetEnum(m, "nonlinearity",
                                {"relu", "gelu", "elu", "abs", "leaky_relu", "none", "zscore"}, p,
                                &o.nonlinearity),
                  spec::GetEnum(m, "layer1", {"curvature", "random"}, p, &o.layer1),
                  spec::GetEnum(m, "curvature_grid", {"reference", "image"}, p, &o.curvature_grid),
                  spec::GetEnum(m, "normalize", {"imagenet", "none"}, p, &o.normalize),
                  spec::GetEnum(m, "readout_norm", {"batchnorm", "none"}, p, &o.readout_norm)}) {
    if (!st.ok()) return st;
  }
  o.seed = static_cast<uint64_t>(seed);
  auto sides = ExpansionBlockSides(o.image_size, o);
  if (sides.back() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, ".image_size: ", o.image_size, " px is too small for the expansion model"));
  }
  return o;
}

std::vector<int64_t> ExpansionBlockSides(int64_t image_size, const ExpansionOptions& o) {
  const int64_t pad = o.layer1 == "curvature" ? 6 : 7;
  std::vector<int64_t> sides;
  int64_t s = image_size + 2 * pad - 15 + 1;
  s = s / 2;
  sides.push_back(s);
  for (int64_t k : {7, 5, 3}) {
    s = (s - k + 1) / 2;
    sides.push_back(s);
  }
  s = s - 3 + 1 - 4 + 1;  // conv 3x3, then AvgPool(4, stride 1)
  sides.push_back(s);
  return sides;
}

ExpansionImpl::ExpansionImpl(const ExpansionOptions& options)
    : VisionModel("Expansion"), options_(options) {
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  at::Tensor w1;
  int64_t c1;
  if (options.layer1 == "curvature") {
    CurvatureFilterOptions fo;
    fo.grid = options.curvature_grid;
    at::Tensor bank = CurvatureFilterBank(fo);  // [36,1,15,15]
    // Grouped conv with groups=3: R's 36 maps, then G's, then B's.
    w1 = bank.repeat({3, 1, 1, 1}).contiguous();
    c1 = w1.size(0);
  } else {
    w1 = at::empty({options.random_filters_1, 3, 15, 15}, at::kFloat);
    InitWeight(w1, options.init, gen);
    c1 = options.random_filters_1;
  }
  weights_.push_back(register_buffer("conv1", w1));
  const int64_t widths[] = {c1, options.filters_2, options.filters_3, options.filters_4,
                            options.filters_5};
  const int64_t kernels[] = {7, 5, 3, 3};
  for (int i = 0; i < 4; ++i) {
    at::Tensor w = at::empty({widths[i + 1], widths[i], kernels[i], kernels[i]}, at::kFloat);
    InitWeight(w, options.init, gen);
    weights_.push_back(register_buffer(absl::StrCat("conv", i + 2), w));
  }
  const int64_t s5 = ExpansionBlockSides(options.image_size, options).back();
  feature_dim_ = options.filters_5 * std::max<int64_t>(s5, 0) * std::max<int64_t>(s5, 0);
  if (options.num_classes > 0) {
    if (options.readout_norm == "batchnorm") {
      readout_norm_ = register_module(
          "readout_norm", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(feature_dim_).affine(false)));
    }
    readout_ = register_module("readout", torch::nn::Linear(feature_dim_, options.num_classes));
  }
}

const std::vector<std::string>& ExpansionImpl::LayerNames() const {
  static const std::vector<std::string> k = {"block1", "block2", "block3", "block4", "block5"};
  return k;
}

at::Tensor ExpansionImpl::Block(int block, const at::Tensor& x) const {
  const at::Tensor& w = weights_[block - 1];
  at::Tensor y;
  if (block == 1) {
    const bool curv = options_.layer1 == "curvature";
    y = at::conv2d(x, w, {}, 1, curv ? 6 : 7, 1, curv ? 3 : 1);
  } else {
    y = at::conv2d(x, w);
  }
  const std::string& nl = options_.nonlinearity;
  if (nl == "relu") y = at::relu(y);
  else if (nl == "gelu") y = at::gelu(y);
  else if (nl == "elu") y = at::elu(y);
  else if (nl == "abs") y = at::abs(y);
  else if (nl == "leaky_relu") y = at::leaky_relu(y, 0.01);
  else if (nl == "zscore") {
    y = (y - y.mean({1}, true)) / (y.std({1}, /*unbiased=*/false, true) + 1e-8);
  }
  if (block < 5) return at::avg_pool2d(y, {2, 2});
  return at::avg_pool2d(y, {4, 4}, {1, 1});
}

ModelOutput ExpansionImpl::Forward(const at::Tensor& x) { return ForwardUnit(ImageNetToUnit(x)); }

ModelOutput ExpansionImpl::ForwardUnit(const at::Tensor& x) {
  ModelOutput out;
  at::Tensor h = x;
  if (options_.normalize == "imagenet") {
    auto opts = x.options();
    at::Tensor mean = at::tensor({0.485, 0.456, 0.406}, opts).view({1, 3, 1, 1});
    at::Tensor stdv = at::tensor({0.229, 0.224, 0.225}, opts).view({1, 3, 1, 1});
    h = (h - mean) / stdv;
  }
  for (int b = 1; b <= 5; ++b) {
    h = Block(b, h);
    out.layers.push_back(h);
  }
  out.features = h.flatten(1);
  if (!readout_.is_empty()) {
    out.logits = readout_->forward(readout_norm_.is_empty() ? out.features : readout_norm_->forward(out.features));
  }
  return out;
}

at::Tensor ExpansionImpl::Features(const at::Tensor& x) {
  at::Tensor h = x;
  if (options_.normalize == "imagenet") {
    auto opts = x.options();
    h = (h - at::tensor({0.485, 0.456, 0.406}, opts).view({1, 3, 1, 1})) /
        at::tensor({0.229, 0.224, 0.225}, opts).view({1, 3, 1, 1});
  }
  for (int b = 1; b <= 5; ++b) h = Block(b, h);
  return h.flatten(1);
}

absl::StatusOr<std::shared_ptr<VisionModel>> MakeExpansionModel(const nlohmann::json& model_spec,
                                                                int64_t num_classes) {
  auto o = ParseExpansionOptions(model_spec);
  if (!o.ok()) return o.status();
  o->num_classes = num_classes;
  return std::shared_ptr<VisionModel>(std::make_shared<ExpansionImpl>(*o));
}

}  // namespace topolab::science
