// encoding / pca / linear_probe extract analyses (encoding_analyses.h).
// One translation unit on purpose: the three share the layer selection,
// pooling rule and activation streaming, and every ATen TU is costly.
#include "worker/jobs/extract/encoding_analyses.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <stb/stb_image.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/status_macros.h"
#include "worker/science/data/dataset.h"
#include "worker/science/families/encoding.h"
#include "worker/science/io/npy.h"
#include "worker/science/viz/viz.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;
namespace sci = topolab::science;
using Json = nlohmann::json;

// --- Option reading ------------------------------------------------------------
// The worker's spec has been validated and defaulted by the schema
// (proto/config/schema_extract_analyses.cc); these readers still type-check,
// because jobs run in-process in tests (and by hand) without the schema.

class OptionReader {
 public:
  OptionReader(const Json& spec, std::string name) : name_(std::move(name)) {
    if (spec.contains(name_) && spec[name_].is_object()) obj_ = spec[name_];
  }
  std::string Key(const std::string& k) const { return name_ + "." + k; }
  bool Has(const std::string& k) const { return obj_.contains(k) && !obj_[k].is_null(); }
  const Json& obj() const { return obj_; }

  absl::Status Int(const std::string& k, int64_t lo, int64_t hi, int64_t* out) const {
    if (!Has(k)) return absl::OkStatus();
    const Json& v = obj_[k];
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat(Key(k), ": must be an integer in [", lo, ", ", hi, "], got ", v.dump()));
    }
    *out = v.get<int64_t>();
    return absl::OkStatus();
  }
  absl::Status Double(const std::string& k, double lo, double hi, double* out) const {
    if (!Has(k)) return absl::OkStatus();
    const Json& v = obj_[k];
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < lo ||
        v.get<double>() > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat(Key(k), ": must be a number in [", lo, ", ", hi, "], got ", v.dump()));
    }
    *out = v.get<double>();
    return absl::OkStatus();
  }
  absl::Status Bool(const std::string& k, bool* out) const {
    if (!Has(k)) return absl::OkStatus();
    if (!obj_[k].is_boolean()) return absl::InvalidArgumentError(Key(k) + ": must be a boolean");
    *out = obj_[k].get<bool>();
    return absl::OkStatus();
  }
  absl::Status String(const std::string& k, std::string* out) const {
    if (!Has(k)) return absl::OkStatus();
    if (!obj_[k].is_string()) return absl::InvalidArgumentError(Key(k) + ": must be a string");
    *out = obj_[k].get<std::string>();
    return absl::OkStatus();
  }
  absl::Status Enum(const std::string& k, const std::vector<std::string>& allowed, std::string* out) const {
    std::string v = *out;
    if (absl::Status s = String(k, &v); !s.ok()) return s;
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return absl::InvalidArgumentError(Key(k) + ": must be one of " + list + ", got \"" + v + "\"");
    }
    *out = v;
    return absl::OkStatus();
  }
  absl::Status List(const std::string& k, std::vector<std::string>* out) const {
    if (!Has(k)) return absl::OkStatus();
    if (!obj_[k].is_array()) return absl::InvalidArgumentError(Key(k) + ": must be a list of strings");
    out->clear();
    for (const Json& v : obj_[k]) {
      if (!v.is_string()) return absl::InvalidArgumentError(Key(k) + ": must be a list of strings");
      out->push_back(v.get<std::string>());
    }
    return absl::OkStatus();
  }

 private:
  std::string name_;
  Json obj_ = Json::object();
};

// --- Input files -----------------------------------------------------------------

// Absolute paths are used as they are; relative ones live under the job's
// inputs folder and may not leave it.
absl::StatusOr<fs::path> ResolveInput(const ExtraAnalysisInput& in, const std::string& key,
                                      const std::string& value, bool directory) {
  if (value.empty()) return absl::InvalidArgumentError(key + ": must not be empty");
  fs::path p(value);
  fs::path resolved;
  if (p.is_absolute()) {
    resolved = p.lexically_normal();
  } else {
    const fs::path rel = p.lexically_normal();
    if (rel.empty() || *rel.begin() == ".." || rel == ".") {
      return absl::InvalidArgumentError(key + ": \"" + value +
                                        "\" leaves the job's inputs folder (relative paths are "
                                        "resolved under " + in.ctx->inputs_dir.string() + ")");
    }
    resolved = in.ctx->inputs_dir / rel;
  }
  std::error_code ec;
  if (!fs::exists(resolved, ec)) {
    return absl::NotFoundError(key + ": no such " + (directory ? "folder" : "file") + " " +
                               resolved.string());
  }
  if (directory ? !fs::is_directory(resolved, ec) : !fs::is_regular_file(resolved, ec)) {
    return absl::InvalidArgumentError(key + ": " + resolved.string() + " is not a " +
                                      (directory ? "folder" : "regular file"));
  }
  return resolved;
}

absl::StatusOr<at::Tensor> LoadNpy(const ExtraAnalysisInput& in, const std::string& key,
                                   const std::string& value) {
  absl::StatusOr<fs::path> p = ResolveInput(in, key, value, /*directory=*/false);
  if (!p.ok()) return p.status();
  try {
    return sci::ReadNpy(p->string());
  } catch (const std::exception& e) {
    return absl::DataLossError(key + ": cannot read " + p->string() + ": " + e.what());
  }
}

bool IsImageFile(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// Raw stimuli, delivered in batches as [B,3,S,S] float32 in [0,1].
class StimulusSource {
 public:
  virtual ~StimulusSource() = default;
  virtual int64_t size() const = 0;
  virtual absl::StatusOr<at::Tensor> Images(int64_t start, int64_t count, int64_t side) const = 0;
  virtual Json Describe() const = 0;
};

class FolderStimuli : public StimulusSource {
 public:
  FolderStimuli(fs::path root, std::vector<std::string> rel) : root_(std::move(root)), rel_(std::move(rel)) {}
  int64_t size() const override { return static_cast<int64_t>(rel_.size()); }
  absl::StatusOr<at::Tensor> Images(int64_t start, int64_t count, int64_t side) const override {
    std::vector<at::Tensor> out;
    for (int64_t i = start; i < start + count; ++i) {
      const std::string file = (root_ / rel_[i]).string();
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load(file.c_str(), &w, &h, &c, 3);
      if (px == nullptr) {
        return absl::DataLossError("encoding.images: cannot decode " + file + ": " + stbi_failure_reason());
      }
      at::Tensor hwc = at::from_blob(px, {h, w, 3}, at::TensorOptions().dtype(at::kByte)).clone();
      stbi_image_free(px);
      out.push_back(sci::ToRgbFloat(hwc.permute({2, 0, 1}).unsqueeze(0), side));
    }
    return at::cat(out);
  }
  Json Describe() const override {
    return {{"source", "images"}, {"folder", root_.string()}, {"count", size()},
            {"first", rel_.empty() ? "" : rel_.front()}, {"last", rel_.empty() ? "" : rel_.back()}};
  }

 private:
  fs::path root_;
  std::vector<std::string> rel_;
};

class NpyStimuli : public StimulusSource {
 public:
  NpyStimuli(at::Tensor nchw, std::string path) : nchw_(std::move(nchw)), path_(std::move(path)) {}
  int64_t size() const override { return nchw_.size(0); }
  absl::StatusOr<at::Tensor> Images(int64_t start, int64_t count, int64_t side) const override {
    return sci::ToRgbFloat(nchw_.narrow(0, start, count), side);
  }
  Json Describe() const override {
    return {{"source", "stimuli_npy"}, {"path", path_}, {"count", size()},
            {"shape", std::vector<int64_t>(nchw_.sizes().begin(), nchw_.sizes().end())}};
  }

 private:
  at::Tensor nchw_;  // [N, C, H, W], uint8 or float in [0, 1]
  std::string path_;
};

absl::StatusOr<std::unique_ptr<StimulusSource>> OpenFolderStimuli(const ExtraAnalysisInput& in,
                                                                  const std::string& value) {
  const std::string key = "encoding.images";
  absl::StatusOr<fs::path> root = ResolveInput(in, key, value, /*directory=*/true);
  if (!root.ok()) return root.status();
  std::vector<std::string> rel;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(*root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec) && IsImageFile(it->path())) {
      rel.push_back(fs::relative(it->path(), *root).generic_string());
    }
  }
  if (ec) return absl::NotFoundError(key + ": cannot list " + root->string() + ": " + ec.message());
  if (rel.empty()) {
    return absl::NotFoundError(key + ": " + root->string() + " holds no .png/.jpg/.jpeg files");
  }
  std::sort(rel.begin(), rel.end());  // byte-wise: the documented row order
  return std::unique_ptr<StimulusSource>(std::make_unique<FolderStimuli>(*root, std::move(rel)));
}

absl::StatusOr<std::unique_ptr<StimulusSource>> OpenNpyStimuli(const ExtraAnalysisInput& in,
                                                               const std::string& value) {
  const std::string key = "encoding.stimuli_npy";
  absl::StatusOr<at::Tensor> raw = LoadNpy(in, key, value);
  if (!raw.ok()) return raw.status();
  at::Tensor x = *raw;
  auto shape_str = [&] {
    std::string s;
    for (int64_t d : x.sizes()) s += (s.empty() ? "" : ", ") + std::to_string(d);
    return "[" + s + "]";
  };
  at::Tensor nchw;
  if (x.dim() == 3) {
    nchw = x.unsqueeze(1);
  } else if (x.dim() == 4 && x.size(3) == 3) {
    nchw = x.permute({0, 3, 1, 2});
  } else if (x.dim() == 4 && x.size(1) == 3) {
    nchw = x;
  } else {
    return absl::InvalidArgumentError(key + ": " + value + " has shape " + shape_str() +
                                      "; expected [N,H,W], [N,H,W,3] or [N,3,H,W]");
  }
  if (x.scalar_type() != at::kByte) {
    if (!at::isFloatingType(x.scalar_type())) {
      return absl::InvalidArgumentError(key + ": " + value + " must hold uint8 (0-255) or float (0-1) values");
    }
    nchw = nchw.to(at::kFloat);
    if (!at::isfinite(nchw).all().item<bool>()) {
      return absl::InvalidArgumentError(key + ": " + value + " contains NaN/Inf");
    }
    const double lo = nchw.min().item<double>(), hi = nchw.max().item<double>();
    if (lo < -1e-3 || hi > 1.0 + 1e-3) {
      return absl::InvalidArgumentError(absl::StrCat(
          key, ": float stimuli must lie in [0, 1], found [", lo, ", ", hi, "] in ", value,
          " (save 0-255 images as uint8)"));
    }
    nchw = nchw.clamp(0.0, 1.0);
  }
  return std::unique_ptr<StimulusSource>(std::make_unique<NpyStimuli>(nchw.contiguous(), value));
}

// --- Layers and streaming ----------------------------------------------------------

struct LayerSel {
  std::string name;
  int index = -1;            // into ModelOutput::layers; -1 = features
  std::vector<int64_t> shape;  // per image
  int64_t pool_h = 0, pool_w = 0;  // 0 = not pooled
  int64_t dim = 0;           // feature count after pooling/flattening
  Json Describe() const {
    Json j = {{"shape", shape}, {"n_features", dim}};
    j["pooled_to"] = pool_h > 0 ? Json(std::vector<int64_t>{pool_h, pool_w}) : Json(nullptr);
    return j;
  }
};

absl::StatusOr<std::vector<LayerSel>> SelectLayers(const ExtraAnalysisInput& in, const std::string& key,
                                                   std::vector<std::string> wanted, int64_t max_features) {
  const std::vector<std::string>& names = in.net->LayerNames();
  if (wanted.empty()) wanted = names;
  at::Tensor probe = at::zeros({1, 3, in.image_size, in.image_size}, at::kFloat).to(at::Device(in.ctx->device));
  sci::ModelOutput out = in.net->Forward(in.preprocess(probe));
  std::vector<LayerSel> sel;
  for (const std::string& w : wanted) {
    LayerSel l;
    l.name = w;
    at::Tensor t;
    if (w == "features") {
      t = out.features;
    } else {
      auto it = std::find(names.begin(), names.end(), w);
      if (it == names.end()) {
        std::string known = "features";
        for (const auto& n : names) known += ", " + n;
        return absl::InvalidArgumentError(key + ": unknown layer \"" + w + "\" of family " +
                                          in.net->family() + " (known: " + known + ")");
      }
      l.index = static_cast<int>(it - names.begin());
      t = out.layers[l.index];
    }
    l.shape.assign(t.sizes().begin() + 1, t.sizes().end());
    l.dim = 1;
    for (int64_t d : l.shape) l.dim *= d;
    if (l.shape.size() == 3) {
      const int64_t s = PooledSide(l.shape[0], l.shape[1], l.shape[2], max_features);
      if (s > 0) {
        l.pool_h = std::min(s, l.shape[1]);
        l.pool_w = std::min(s, l.shape[2]);
        l.dim = l.shape[0] * l.pool_h * l.pool_w;
      }
    }
    sel.push_back(l);
  }
  return sel;
}

at::Tensor Featurize(const sci::ModelOutput& out, const LayerSel& l) {
  at::Tensor t = l.index < 0 ? out.features : out.layers[l.index];
  if (l.pool_h > 0) t = at::adaptive_avg_pool2d(t, {l.pool_h, l.pool_w});
  return t.reshape({t.size(0), -1}).to(at::kCPU, at::kFloat);
}

using BatchFn = std::function<absl::StatusOr<at::Tensor>(int64_t start, int64_t count)>;

// Streams n images through the model; returns one [n, dim] float32 CPU
// matrix per layer.
absl::StatusOr<std::vector<at::Tensor>> Stream(const ExtraAnalysisInput& in, int64_t n, const BatchFn& batch,
                                               const std::vector<LayerSel>& layers) {
  std::vector<at::Tensor> acts;
  for (const LayerSel& l : layers) acts.push_back(at::empty({n, l.dim}, at::kFloat));
  const int64_t bs = std::max<int64_t>(1, in.batch_size);
  for (int64_t s = 0; s < n; s += bs) {
    if (in.ctx->reporter->CancelRequested()) return absl::CancelledError("extract cancelled");
    const int64_t c = std::min(bs, n - s);
    absl::StatusOr<at::Tensor> imgs = batch(s, c);
    if (!imgs.ok()) return imgs.status();
    sci::ModelOutput out = in.net->Forward(in.preprocess(imgs->to(at::Device(in.ctx->device))));
    for (size_t i = 0; i < layers.size(); ++i) acts[i].narrow(0, s, c).copy_(Featurize(out, layers[i]));
  }
  return acts;
}

absl::StatusOr<std::unique_ptr<sci::ImageDataset>> OpenSplit(const ExtraAnalysisInput& in, const std::string& key,
                                                             const std::string& split) {
  Json dspec = in.data_spec.is_object() ? in.data_spec : Json::object();
  dspec["image_size"] = in.image_size;
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> ds = sci::OpenDataset(dspec, split);
  if (!ds.ok()) {
    return absl::Status(ds.status().code(), key + ": " + split + " split: " + std::string(ds.status().message()));
  }
  return ds;
}

absl::StatusOr<std::vector<at::Tensor>> StreamDataset(const ExtraAnalysisInput& in, const sci::ImageDataset& ds,
                                                      const std::vector<int64_t>& idx,
                                                      const std::vector<LayerSel>& layers, at::Tensor* labels) {
  std::vector<int64_t> lab(idx.size());
  BatchFn fn = [&](int64_t s, int64_t c) -> absl::StatusOr<at::Tensor> {
    std::vector<int64_t> b(idx.begin() + s, idx.begin() + s + c);
    try {
      auto [images, l] = ds.GetBatch(b);
      at::Tensor ll = l.to(at::kLong).contiguous();
      std::copy(ll.data_ptr<int64_t>(), ll.data_ptr<int64_t>() + c, lab.begin() + s);
      return images;
    } catch (const std::exception& e) {
      return absl::DataLossError(e.what());
    }
  };
  absl::StatusOr<std::vector<at::Tensor>> acts = Stream(in, static_cast<int64_t>(idx.size()), fn, layers);
  if (labels != nullptr) *labels = at::tensor(lab, at::TensorOptions().dtype(at::kLong));
  return acts;
}

absl::Status WriteJson(const fs::path& path, const Json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  if (!f) return absl::InternalError("cannot write " + path.string());
  return absl::OkStatus();
}

Json Num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

std::vector<double> ToVector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// nan-median of a 1-D tensor (lower middle for even counts, as at::nanmedian).
double NanMedian(const at::Tensor& t) {
  at::Tensor d = t.to(at::kCPU, at::kDouble);
  at::Tensor finite = d.index_select(0, at::nonzero(at::isfinite(d)).squeeze(1));
  if (finite.numel() == 0) return NAN;
  // numpy's median (mean of the two middle values), what users compare with.
  return at::quantile(finite, 0.5).item<double>();
}
double NanMean(const at::Tensor& t) {
  at::Tensor d = t.to(at::kCPU, at::kDouble);
  at::Tensor finite = d.index_select(0, at::nonzero(at::isfinite(d)).squeeze(1));
  return finite.numel() == 0 ? NAN : finite.mean().item<double>();
}

const std::vector<sci::Rgb>& Palette() {
  static const std::vector<sci::Rgb> p = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                          {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                                          {188, 189, 34},  {23, 190, 207}};
  return p;
}

}  // namespace

int64_t PooledSide(int64_t c, int64_t h, int64_t w, int64_t max_features) {
  if (max_features <= 0 || c * h * w <= max_features) return 0;
  const int64_t s = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(max_features) / c)));
  return std::max<int64_t>(1, s);
}

std::vector<int64_t> SeededSubset(int64_t n, int64_t want, uint64_t seed) {
  std::vector<int64_t> idx;
  if (want <= 0 || want >= n) {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, want);
  perm = std::get<0>(perm.sort()).contiguous();
  idx.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + want);
  return idx;
}

// --- encoding ------------------------------------------------------------------------

absl::StatusOr<Json> RunEncodingAnalysis(const ExtraAnalysisInput& in) {
  OptionReader r(in.spec, "encoding");
  std::string responses, images, stimuli_npy, ceiling, test_indices, alpha_score = "pearson",
                                                                     axis = "units";
  std::vector<std::string> layer_names;
  int64_t max_features = 20000, folds = 0, n_boot = 1000, seed = 0, alpha_count = 20;
  double train_fraction = 0.8, log10_min = -10, log10_max = 9;
  RETURN_IF_ERROR(r.String("responses", &responses));
  RETURN_IF_ERROR(r.String("images", &images));
  RETURN_IF_ERROR(r.String("stimuli_npy", &stimuli_npy));
  RETURN_IF_ERROR(r.String("ceiling", &ceiling));
  RETURN_IF_ERROR(r.String("test_indices", &test_indices));
  RETURN_IF_ERROR(r.List("layers", &layer_names));
  RETURN_IF_ERROR(r.Int("max_features", 0, int64_t{1} << 40, &max_features));
  RETURN_IF_ERROR(r.Int("folds", 0, 1000, &folds));
  RETURN_IF_ERROR(r.Int("bootstrap", 0, 1000000, &n_boot));
  RETURN_IF_ERROR(r.Int("seed", 0, int64_t{1} << 62, &seed));
  RETURN_IF_ERROR(r.Double("train_fraction", 0, 1, &train_fraction));
  RETURN_IF_ERROR(r.Enum("alpha_score", {"pearson", "mse"}, &alpha_score));
  RETURN_IF_ERROR(r.Enum("bootstrap_axis", {"units", "stimuli"}, &axis));
  if (r.Has("alphas")) {
    OptionReader a(r.obj(), "alphas");
    RETURN_IF_ERROR(a.Double("log10_min", -30, 30, &log10_min));
    RETURN_IF_ERROR(a.Double("log10_max", -30, 30, &log10_max));
    RETURN_IF_ERROR(a.Int("count", 1, 1000, &alpha_count));
    if (log10_max < log10_min) {
      return absl::InvalidArgumentError("encoding.alphas: log10_max must be >= log10_min");
    }
  }
  if (folds == 1) return absl::InvalidArgumentError("encoding.folds: must be 0 (one split) or >= 2");
  if (folds == 0 && test_indices.empty() && !(train_fraction > 0 && train_fraction < 1)) {
    return absl::InvalidArgumentError("encoding.train_fraction: must lie strictly between 0 and 1");
  }
  if (responses.empty()) return absl::InvalidArgumentError("encoding.responses: required (.npy, stimuli x units)");
  if (images.empty() == stimuli_npy.empty()) {
    return absl::InvalidArgumentError("give exactly one of encoding.images (folder) and "
                                      "encoding.stimuli_npy (.npy)");
  }
  std::vector<double> alphas;
  for (int64_t i = 0; i < alpha_count; ++i) {
    const double e = alpha_count == 1 ? log10_min
                                      : log10_min + (log10_max - log10_min) * static_cast<double>(i) /
                                                        static_cast<double>(alpha_count - 1);
    alphas.push_back(std::pow(10.0, e));
  }

  // Layers first: a wrong name fails before any file is read.
  absl::StatusOr<std::vector<LayerSel>> layers = SelectLayers(in, "encoding.layers", layer_names, max_features);
  if (!layers.ok()) return layers.status();

  // Neural data.
  absl::StatusOr<at::Tensor> y_raw = LoadNpy(in, "encoding.responses", responses);
  if (!y_raw.ok()) return y_raw.status();
  at::Tensor y = *y_raw;
  if (y.dim() == 1) y = y.unsqueeze(1);
  if (y.dim() != 2 || y.size(0) == 0 || y.size(1) == 0) {
    return absl::InvalidArgumentError("encoding.responses: " + responses + " must be a non-empty [stimuli, units] array");
  }
  if (y.scalar_type() == at::kBool) return absl::InvalidArgumentError("encoding.responses: must hold numbers");
  y = y.to(at::kDouble);
  if (!at::isfinite(y).all().item<bool>()) {
    return absl::InvalidArgumentError("encoding.responses: " + responses + " contains NaN/Inf");
  }
  const int64_t n = y.size(0), units = y.size(1);

  absl::StatusOr<std::unique_ptr<StimulusSource>> src =
      images.empty() ? OpenNpyStimuli(in, stimuli_npy) : OpenFolderStimuli(in, images);
  if (!src.ok()) return src.status();
  const std::string src_key = images.empty() ? "encoding.stimuli_npy" : "encoding.images";
  if ((*src)->size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("encoding.responses has ", n, " rows (stimuli) but ",
                                                   src_key, " has ", (*src)->size(), " stimuli"));
  }

  at::Tensor ceil_t;
  if (!ceiling.empty()) {
    absl::StatusOr<at::Tensor> c = LoadNpy(in, "encoding.ceiling", ceiling);
    if (!c.ok()) return c.status();
    ceil_t = c->to(at::kDouble).reshape({-1});
    if (ceil_t.numel() == 1) ceil_t = ceil_t.expand({units}).contiguous();
    if (ceil_t.numel() != units) {
      return absl::InvalidArgumentError(absl::StrCat("encoding.ceiling: has ", ceil_t.numel(),
                                                     " values but encoding.responses has ", units, " units"));
    }
  }

  // Splits: list of (train rows, test rows).
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> splits;
  Json split_info;
  if (!test_indices.empty()) {
    absl::StatusOr<at::Tensor> ti = LoadNpy(in, "encoding.test_indices", test_indices);
    if (!ti.ok()) return ti.status();
    if (at::isFloatingType(ti->scalar_type()) || ti->scalar_type() == at::kBool) {
      return absl::InvalidArgumentError("encoding.test_indices: must hold integers");
    }
    at::Tensor t = ti->to(at::kLong).reshape({-1});
    std::vector<char> is_test(n, 0);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const int64_t v = t[i].item<int64_t>();
      if (v < 0 || v >= n) {
        return absl::InvalidArgumentError(absl::StrCat("encoding.test_indices: row ", v, " is outside [0, ", n, ")"));
      }
      is_test[v] = 1;
    }
    std::vector<int64_t> tr, te;
    for (int64_t i = 0; i < n; ++i) (is_test[i] ? te : tr).push_back(i);
    splits.emplace_back(tr, te);
    split_info = {{"kind", "test_indices"}, {"train", tr.size()}, {"test", te.size()}};
  } else {
    at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
    at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)).contiguous();
    std::vector<int64_t> p(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
    const int64_t k = folds == 0 ? 1 : folds;
    if (folds > n) return absl::InvalidArgumentError(absl::StrCat("encoding.folds: ", folds, " > ", n, " stimuli"));
    for (int64_t f = 0; f < k; ++f) {
      int64_t lo, hi;  // test range of the permutation
      if (folds == 0) {
        lo = 0;
        hi = static_cast<int64_t>(std::llround(static_cast<double>(n) * (1.0 - train_fraction)));
      } else {
        lo = f * n / k;
        hi = (f + 1) * n / k;
      }
      std::vector<int64_t> tr, te;
      for (int64_t i = 0; i < n; ++i) (i >= lo && i < hi ? te : tr).push_back(p[i]);
      std::sort(tr.begin(), tr.end());
      std::sort(te.begin(), te.end());
      splits.emplace_back(tr, te);
    }
    split_info = folds == 0 ? Json{{"kind", "random"}, {"train_fraction", train_fraction},
                                   {"train", splits[0].first.size()}, {"test", splits[0].second.size()}}
                            : Json{{"kind", "folds"}, {"folds", folds}};
    split_info["seed"] = seed;
  }
  for (const auto& [tr, te] : splits) {
    if (tr.size() < 3 || te.size() < 3) {
      return absl::InvalidArgumentError(absl::StrCat("a split has ", tr.size(), " train and ", te.size(),
                                                     " test stimuli; each needs at least 3 (n = ", n, ")"));
    }
  }

  const StimulusSource& source = **src;
  const int64_t side = in.image_size;
  absl::StatusOr<std::vector<at::Tensor>> acts =
      Stream(in, n, [&](int64_t s, int64_t c) { return source.Images(s, c, side); }, *layers);
  if (!acts.ok()) return acts.status();

  const fs::path dir = in.Dir("encoding");
  const at::Device dev(in.ctx->device);
  sci::EncodingOptions eo;
  eo.alphas = alphas;
  eo.alpha_score = alpha_score;
  eo.n_boot = 0;  // the bootstrap runs once on all held-out predictions below
  Json per_layer = Json::object();
  std::string best;
  double best_score = -INFINITY;
  at::Tensor y_dev = y.to(dev);
  for (size_t li = 0; li < layers->size(); ++li) {
    const LayerSel& l = (*layers)[li];
    at::Tensor x = (*acts)[li].to(dev);
    at::Tensor r_sum = at::zeros({units}, at::kDouble), r_count = at::zeros({units}, at::kDouble);
    at::Tensor pred_all = at::zeros({n, units}, at::kDouble);
    std::vector<int64_t> held;
    Json fold_alpha = Json::array();
    for (const auto& [tr, te] : splits) {
      at::Tensor itr = at::tensor(tr, at::kLong).to(dev), ite = at::tensor(te, at::kLong).to(dev);
      absl::StatusOr<sci::EncodingResult> er = sci::EncodingScore(
          x.index_select(0, itr), y_dev.index_select(0, itr), x.index_select(0, ite), y_dev.index_select(0, ite), eo);
      if (!er.ok()) return absl::Status(er.status().code(), "layer " + l.name + ": " + std::string(er.status().message()));
      at::Tensor ur = er->unit_r.to(at::kCPU);
      at::Tensor ok = at::isfinite(ur);
      r_sum += at::where(ok, ur, at::zeros_like(ur));
      r_count += ok.to(at::kDouble);
      pred_all.index_copy_(0, at::tensor(te, at::kLong), er->test_predictions.to(at::kCPU));
      held.insert(held.end(), te.begin(), te.end());
      fold_alpha.push_back(er->alpha);
    }
    // Mean over folds; NaN where a unit was constant in every test split.
    at::Tensor unit_r = at::where(r_count > 0, r_sum / r_count.clamp_min(1), at::full_like(r_sum, NAN));
    std::sort(held.begin(), held.end());
    at::Tensor ih = at::tensor(held, at::kLong);
    sci::BootstrapResult boot = sci::BootstrapScore(pred_all.index_select(0, ih), y.index_select(0, ih), n_boot,
                                                    static_cast<uint64_t>(seed), axis);
    Json lj = l.Describe();
    lj["median_r"] = Num(NanMedian(unit_r));
    lj["mean_r"] = Num(NanMean(unit_r));
    lj["n_units"] = units;
    lj["n_units_scored"] = (r_count > 0).sum().item<int64_t>();
    lj["alpha"] = fold_alpha.size() == 1 ? fold_alpha[0] : fold_alpha;
    if (n_boot > 0) {
      lj["bootstrap"] = {{"n", n_boot}, {"axis", axis}, {"mean", Num(boot.mean)},
                         {"ci_low", Num(boot.low)}, {"ci_high", Num(boot.high)}};
    }
    sci::WriteNpy((dir / (l.name + "_r.npy")).string(), unit_r);
    if (ceil_t.defined()) {
      at::Tensor valid = at::isfinite(ceil_t) & (ceil_t > 0);
      at::Tensor norm = at::where(valid, unit_r / at::where(valid, ceil_t, at::ones_like(ceil_t)),
                                  at::full_like(unit_r, NAN));
      lj["median_r_normalized"] = Num(NanMedian(norm));
      lj["mean_r_normalized"] = Num(NanMean(norm));
      lj["n_units_with_ceiling"] = valid.sum().item<int64_t>();
      sci::WriteNpy((dir / (l.name + "_r_normalized.npy")).string(), norm);
    }
    const double score = NanMedian(unit_r);
    if (std::isfinite(score) && score > best_score) {
      best_score = score;
      best = l.name;
    }
    per_layer[l.name] = lj;
    in.ctx->reporter->Log(absl::StrCat("encoding: layer=", l.name, " features=", l.dim,
                                       " median_r=", score));
  }
  Json result = {{"layers", per_layer},
                 {"n_stimuli", n},
                 {"n_units", units},
                 {"stimuli", source.Describe()},
                 {"split", split_info},
                 {"alphas", alphas},
                 {"alpha_score", alpha_score},
                 {"score", "Pearson r per unit on held-out stimuli; median over units"},
                 {"best_layer", best.empty() ? Json(nullptr) : Json(best)}};
  if (!ceiling.empty()) result["ceiling"] = ceiling;
  RETURN_IF_ERROR(WriteJson(dir / "encoding.json", result));
  return result;
}

// --- pca ----------------------------------------------------------------------------

absl::StatusOr<Json> RunPcaAnalysis(const ExtraAnalysisInput& in) {
  OptionReader r(in.spec, "pca");
  std::vector<std::string> layer_names;
  std::string split = "test";
  int64_t images = 1000, seed = 0, max_features = 20000, spectrum_components = 100, fit_min = 10, fit_max = 500;
  RETURN_IF_ERROR(r.List("layers", &layer_names));
  RETURN_IF_ERROR(r.Enum("split", {"test", "train"}, &split));
  RETURN_IF_ERROR(r.Int("images", 0, int64_t{1} << 40, &images));
  RETURN_IF_ERROR(r.Int("seed", 0, int64_t{1} << 62, &seed));
  RETURN_IF_ERROR(r.Int("max_features", 0, int64_t{1} << 40, &max_features));
  RETURN_IF_ERROR(r.Int("spectrum_components", 0, int64_t{1} << 40, &spectrum_components));
  RETURN_IF_ERROR(r.Int("fit_min_rank", 1, int64_t{1} << 40, &fit_min));
  RETURN_IF_ERROR(r.Int("fit_max_rank", 1, int64_t{1} << 40, &fit_max));
  if (fit_max < fit_min) return absl::InvalidArgumentError("pca.fit_max_rank: must be >= pca.fit_min_rank");

  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> ds = OpenSplit(in, "pca", split);
  if (!ds.ok()) return ds.status();
  const std::vector<int64_t> idx = SeededSubset((*ds)->size(), images, static_cast<uint64_t>(seed));
  if (idx.size() < 2) return absl::InvalidArgumentError("pca.images: need at least 2 images");
  absl::StatusOr<std::vector<LayerSel>> layers = SelectLayers(in, "pca.layers", layer_names, max_features);
  if (!layers.ok()) return layers.status();
  absl::StatusOr<std::vector<at::Tensor>> acts = StreamDataset(in, **ds, idx, *layers, nullptr);
  if (!acts.ok()) return acts.status();

  const fs::path dir = in.Dir("pca");
  const at::Device dev(in.ctx->device);
  Json per_layer = Json::object();
  std::vector<sci::Series> spectrum_plot, cumulative_plot;
  for (size_t li = 0; li < layers->size(); ++li) {
    const LayerSel& l = (*layers)[li];
    sci::PcaResult p = sci::FitPca((*acts)[li].to(dev));
    at::Tensor ev = p.explained_variance.to(at::kCPU);
    at::Tensor ratio = p.explained_variance_ratio.to(at::kCPU);
    at::Tensor cum = ratio.cumsum(0);
    sci::WriteNpy((dir / (l.name + "_eigenvalues.npy")).string(), ev);
    // Power law on the positive part of the spectrum over [fit_min, fit_max].
    const std::vector<double> lam = ToVector(ev);
    std::vector<double> lx, ly;
    for (int64_t k = fit_min; k <= std::min<int64_t>(fit_max, static_cast<int64_t>(lam.size())); ++k) {
      if (lam[k - 1] > 0) {
        lx.push_back(std::log10(static_cast<double>(k)));
        ly.push_back(std::log10(lam[k - 1]));
      }
    }
    Json fit = {{"min_rank", fit_min}, {"max_rank", std::min<int64_t>(fit_max, static_cast<int64_t>(lam.size()))},
                {"points", lx.size()}, {"alpha", nullptr}, {"r2", nullptr}};
    if (lx.size() >= 2) {
      double mx = 0, my = 0;
      for (size_t i = 0; i < lx.size(); ++i) mx += lx[i], my += ly[i];
      mx /= lx.size();
      my /= lx.size();
      double sxx = 0, sxy = 0, syy = 0;
      for (size_t i = 0; i < lx.size(); ++i) {
        sxx += (lx[i] - mx) * (lx[i] - mx);
        sxy += (lx[i] - mx) * (ly[i] - my);
        syy += (ly[i] - my) * (ly[i] - my);
      }
      if (sxx > 0) {
        fit["alpha"] = Num(-sxy / sxx);
        fit["r2"] = syy > 0 ? Num(sxy * sxy / (sxx * syy)) : Json(1.0);
      }
    }
    const int64_t k = spectrum_components <= 0 ? ev.numel() : std::min<int64_t>(spectrum_components, ev.numel());
    auto find_k = [&](double frac) -> Json {
      at::Tensor above = at::nonzero(cum >= frac - 1e-12);
      return above.numel() ? Json(above[0][0].item<int64_t>() + 1) : Json(nullptr);
    };
    Json lj = l.Describe();
    lj["effective_dimensionality"] = Num(p.effective_dimensionality);
    lj["total_variance"] = Num(ev.sum().item<double>());
    lj["n_components"] = ev.numel();
    lj["eigenvalues"] = ToVector(ev.narrow(0, 0, k));
    lj["cumulative_explained_variance"] = ToVector(cum.narrow(0, 0, k));
    lj["components_for_50pct"] = find_k(0.5);
    lj["components_for_90pct"] = find_k(0.9);
    lj["power_law"] = fit;
    per_layer[l.name] = lj;

    const sci::Rgb colour = Palette()[li % Palette().size()];
    sci::Series s1{l.name, {}, {}, colour, false}, s2{l.name, {}, {}, colour, false};
    const std::vector<double> rv = ToVector(ratio), cv = ToVector(cum);
    for (size_t i = 0; i < rv.size(); ++i) {
      s1.x.push_back(std::log10(static_cast<double>(i + 1)));
      s1.y.push_back(rv[i] > 0 ? std::log10(rv[i]) : NAN);
      s2.x.push_back(static_cast<double>(i + 1));
      s2.y.push_back(cv[i]);
    }
    spectrum_plot.push_back(std::move(s1));
    cumulative_plot.push_back(std::move(s2));
    in.ctx->reporter->Log(absl::StrCat("pca: layer=", l.name, " features=", l.dim,
                                       " effective_dim=", p.effective_dimensionality));
  }
  try {
    sci::WriteLinePlotPng((dir / "spectrum.png").string(), spectrum_plot, "PCA variance spectrum",
                          "log10 rank", "log10 variance ratio");
    sci::WriteLinePlotPng((dir / "cumulative.png").string(), cumulative_plot,
                          "cumulative explained variance", "components", "fraction of variance");
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("pca: ") + e.what());
  }
  Json result = {{"layers", per_layer}, {"split", split}, {"images", idx.size()}, {"seed", seed},
                 {"effective_dimensionality", "participation ratio (sum l)^2 / sum l^2 of the covariance eigenvalues"}};
  RETURN_IF_ERROR(WriteJson(dir / "pca.json", result));
  return result;
}

// --- linear_probe ------------------------------------------------------------------------

absl::StatusOr<Json> RunLinearProbeAnalysis(const ExtraAnalysisInput& in) {
  OptionReader r(in.spec, "linear_probe");
  std::vector<std::string> layer_names = {"features"};
  int64_t train_images = 5000, test_images = 1000, seed = 0, max_features = 20000, pca_components = 0;
  sci::LogisticProbeOptions po;
  RETURN_IF_ERROR(r.List("layers", &layer_names));
  if (layer_names.empty()) layer_names = {"features"};
  RETURN_IF_ERROR(r.Int("train_images", 0, int64_t{1} << 40, &train_images));
  RETURN_IF_ERROR(r.Int("test_images", 0, int64_t{1} << 40, &test_images));
  RETURN_IF_ERROR(r.Int("seed", 0, int64_t{1} << 62, &seed));
  RETURN_IF_ERROR(r.Int("max_features", 0, int64_t{1} << 40, &max_features));
  RETURN_IF_ERROR(r.Int("pca_components", 0, int64_t{1} << 40, &pca_components));
  RETURN_IF_ERROR(r.Int("max_iter", 1, 1000000, &po.max_iter));
  RETURN_IF_ERROR(r.Double("l2", 0, 1e6, &po.l2));
  RETURN_IF_ERROR(r.Bool("standardize", &po.standardize));

  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> train = OpenSplit(in, "linear_probe", "train");
  if (!train.ok()) return train.status();
  absl::StatusOr<std::unique_ptr<sci::ImageDataset>> test = OpenSplit(in, "linear_probe", "test");
  if (!test.ok()) return test.status();
  const int64_t num_classes = static_cast<int64_t>((*train)->class_names().size());
  if ((*test)->class_names() != (*train)->class_names()) {
    return absl::FailedPreconditionError("linear_probe: the train and test splits name different classes");
  }
  const std::vector<int64_t> tr_idx = SeededSubset((*train)->size(), train_images, static_cast<uint64_t>(seed));
  const std::vector<int64_t> te_idx = SeededSubset((*test)->size(), test_images, static_cast<uint64_t>(seed) + 1);
  absl::StatusOr<std::vector<LayerSel>> layers =
      SelectLayers(in, "linear_probe.layers", layer_names, max_features);
  if (!layers.ok()) return layers.status();
  at::Tensor y_tr, y_te;
  absl::StatusOr<std::vector<at::Tensor>> a_tr = StreamDataset(in, **train, tr_idx, *layers, &y_tr);
  if (!a_tr.ok()) return a_tr.status();
  absl::StatusOr<std::vector<at::Tensor>> a_te = StreamDataset(in, **test, te_idx, *layers, &y_te);
  if (!a_te.ok()) return a_te.status();

  const fs::path dir = in.Dir("linear_probe");
  const at::Device dev(in.ctx->device);
  // The extract job runs under NoGradGuard; LBFGS needs gradients.
  at::AutoGradMode grad(true);
  Json per_layer = Json::object();
  for (size_t li = 0; li < layers->size(); ++li) {
    const LayerSel& l = (*layers)[li];
    at::Tensor xtr = (*a_tr)[li].to(dev), xte = (*a_te)[li].to(dev);
    Json lj = l.Describe();
    if (pca_components > 0) {
      sci::PcaResult p = sci::FitPca(xtr, pca_components);
      xtr = p.Project(xtr, pca_components);
      xte = p.Project(xte, pca_components);
      lj["pca_components"] = p.components.size(0);
    }
    absl::StatusOr<sci::ProbeResult> pr = sci::LinearProbe(xtr, y_tr.to(dev), xte, y_te.to(dev), num_classes, po);
    if (!pr.ok()) return absl::Status(pr.status().code(), "layer " + l.name + ": " + std::string(pr.status().message()));
    lj["train_accuracy"] = Num(pr->train_accuracy);
    lj["test_accuracy"] = Num(pr->test_accuracy);
    lj["train_loss"] = Num(pr->train_loss);
    sci::WriteNpy((dir / (l.name + "_confusion.npy")).string(), pr->confusion.to(at::kCPU, at::kLong));
    per_layer[l.name] = lj;
    in.ctx->reporter->Log(absl::StrCat("linear_probe: layer=", l.name, " features=", l.dim,
                                       " train_acc=", pr->train_accuracy, " test_acc=", pr->test_accuracy));
  }
  Json result = {{"layers", per_layer},
                 {"classes", (*train)->class_names()},
                 {"chance", 1.0 / static_cast<double>(num_classes)},
                 {"train_images", tr_idx.size()},
                 {"test_images", te_idx.size()},
                 {"seed", seed},
                 {"l2", po.l2},
                 {"max_iter", po.max_iter},
                 {"standardize", po.standardize}};
  RETURN_IF_ERROR(WriteJson(dir / "linear_probe.json", result));
  return result;
}

}  // namespace topolab::worker
