// Fashion-MNIST (gzip IDX via zlib) and image-folder (stb_image) datasets.
#include "worker/science/data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
#include <system_error>

#include <stb/stb_image.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;

const std::vector<std::string>& FashionMnistClassNames() {
  static const std::vector<std::string> names = {"t-shirt/top", "trouser", "pullover", "dress",
                                                 "coat",        "sandal",  "shirt",    "sneaker",
                                                 "bag",         "ankle boot"};
  return names;
}

uint32_t ReadBigEndian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Seeded choice of n of `count` indices, ascending. Uses a local generator so
// it never disturbs the global torch RNG.
std::vector<int64_t> ChooseSubset(int64_t count, int64_t n, uint64_t seed) {
  std::vector<int64_t> all(count);
  std::iota(all.begin(), all.end(), 0);
  if (n <= 0 || n >= count) return all;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor perm = at::randperm(count, gen, at::TensorOptions().dtype(at::kLong));
  const int64_t* p = perm.data_ptr<int64_t>();
  std::vector<int64_t> chosen(p, p + n);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Applies `classes` (keep + relabel) and the subset to (labels of) a split.
// Returns the kept original indices and their new labels.
absl::Status SelectExamples(const std::vector<int64_t>& labels,
                            const std::vector<std::string>& all_names,
                            const DataOptions& options, int64_t subset,
                            std::vector<int64_t>* kept, std::vector<int64_t>* new_labels,
                            std::vector<std::string>* names) {
  std::vector<int64_t> remap(all_names.size(), -1);
  if (options.classes.empty()) {
    std::iota(remap.begin(), remap.end(), 0);
    *names = all_names;
  } else {
    names->clear();
    for (size_t i = 0; i < options.classes.size(); ++i) {
      auto it = std::find(all_names.begin(), all_names.end(), options.classes[i]);
      if (it == all_names.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("data.classes[", i, "]: unknown class '", options.classes[i],
                         "' (known: ", absl::StrJoin(all_names, ", "), ")"));
      }
      if (remap[it - all_names.begin()] >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("data.classes[", i, "]: duplicate class '", options.classes[i], "'"));
      }
      remap[it - all_names.begin()] = static_cast<int64_t>(i);
      names->push_back(options.classes[i]);
    }
  }
  std::vector<int64_t> candidates;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (remap[labels[i]] >= 0) candidates.push_back(static_cast<int64_t>(i));
  }
  std::vector<int64_t> pick =
      ChooseSubset(static_cast<int64_t>(candidates.size()), subset, options.subset_seed);
  kept->clear();
  new_labels->clear();
  for (int64_t p : pick) {
    kept->push_back(candidates[p]);
    new_labels->push_back(remap[labels[candidates[p]]]);
  }
  return absl::OkStatus();
}

// --- Fashion-MNIST ----------------------------------------------------------

class FashionMnistDataset : public ImageDataset {
 public:
  FashionMnistDataset(at::Tensor images, std::vector<int64_t> labels,
                      std::vector<std::string> names, int64_t image_size)
      : images_(std::move(images)),
        labels_(std::move(labels)),
        names_(std::move(names)),
        image_size_(image_size) {}

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  int64_t image_size() const override { return image_size_; }

  std::pair<at::Tensor, at::Tensor> GetBatch(const std::vector<int64_t>& idx) const override {
    at::Tensor index = at::tensor(idx, at::TensorOptions().dtype(at::kLong));
    at::Tensor raw = images_.index_select(0, index).unsqueeze(1);  // [B,1,28,28] uint8
    std::vector<int64_t> labels;
    labels.reserve(idx.size());
    for (int64_t i : idx) labels.push_back(labels_.at(i));
    return {ToRgbFloat(raw, image_size_), at::tensor(labels, at::TensorOptions().dtype(at::kLong))};
  }

 private:
  at::Tensor images_;  // [N,28,28] uint8, only the kept examples
  std::vector<int64_t> labels_;
  std::vector<std::string> names_;
  int64_t image_size_;
};

absl::StatusOr<at::Tensor> LoadIdx(const fs::path& path, uint32_t magic) {
  absl::StatusOr<std::string> bytes = ReadGzipFile(path.string());
  if (!bytes.ok()) return bytes.status();
  return ParseIdx(*bytes, magic, path.string());
}

absl::StatusOr<std::unique_ptr<ImageDataset>> OpenFashionMnist(const DataOptions& options,
                                                               const std::string& split) {
  const fs::path dir = options.path.empty() ? fs::path(kDefaultFashionMnistPath) : fs::path(options.path);
  const std::string prefix = split == "train" ? "train" : "t10k";
  const fs::path images_path = dir / (prefix + "-images-idx3-ubyte.gz");
  const fs::path labels_path = dir / (prefix + "-labels-idx1-ubyte.gz");
  absl::StatusOr<at::Tensor> images = LoadIdx(images_path, kIdxImagesMagic);
  if (!images.ok()) return images.status();
  absl::StatusOr<at::Tensor> labels = LoadIdx(labels_path, kIdxLabelsMagic);
  if (!labels.ok()) return labels.status();
  if (images->size(0) != labels->size(0)) {
    return absl::DataLossError(absl::StrCat(images_path.string(), " has ", images->size(0),
                                            " images but ", labels_path.string(), " has ",
                                            labels->size(0), " labels"));
  }
  const auto& all_names = FashionMnistClassNames();
  std::vector<int64_t> label_vec(labels->size(0));
  const uint8_t* lp = labels->data_ptr<uint8_t>();
  for (int64_t i = 0; i < labels->size(0); ++i) {
    if (lp[i] >= all_names.size()) {
      return absl::DataLossError(absl::StrCat(labels_path.string(), ": label ", int{lp[i]},
                                              " at index ", i, " is not in [0, 10)"));
    }
    label_vec[i] = lp[i];
  }
  std::vector<int64_t> kept, new_labels;
  std::vector<std::string> names;
  const int64_t subset = split == "train" ? options.train_subset : options.test_subset;
  absl::Status s = SelectExamples(label_vec, all_names, options, subset, &kept, &new_labels, &names);
  if (!s.ok()) return s;
  at::Tensor kept_images = images->index_select(0, at::tensor(kept, at::TensorOptions().dtype(at::kLong)));
  return std::unique_ptr<ImageDataset>(std::make_unique<FashionMnistDataset>(
      kept_images.contiguous(), std::move(new_labels), std::move(names), options.image_size));
}

// --- Image folder -----------------------------------------------------------

bool IsImageFile(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

class ImageFolderDataset : public ImageDataset {
 public:
  ImageFolderDataset(std::vector<std::string> files, std::vector<int64_t> labels,
                     std::vector<std::string> names, int64_t image_size)
      : files_(std::move(files)),
        labels_(std::move(labels)),
        names_(std::move(names)),
        image_size_(image_size) {}

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  int64_t image_size() const override { return image_size_; }

  std::pair<at::Tensor, at::Tensor> GetBatch(const std::vector<int64_t>& idx) const override {
    at::Tensor out = at::empty({static_cast<int64_t>(idx.size()), 3, image_size_, image_size_},
                               at::TensorOptions().dtype(at::kFloat));
    std::vector<int64_t> labels;
    labels.reserve(idx.size());
    for (size_t b = 0; b < idx.size(); ++b) {
      const std::string& file = files_.at(idx[b]);
      int w = 0, h = 0, c = 0;
      // Always decode to 3 channels: stb expands gray and drops alpha.
      unsigned char* pixels = stbi_load(file.c_str(), &w, &h, &c, 3);
      if (pixels == nullptr) {
        throw std::runtime_error("cannot decode image " + file + ": " + stbi_failure_reason());
      }
      at::Tensor hwc = at::from_blob(pixels, {h, w, 3}, at::TensorOptions().dtype(at::kByte)).clone();
      stbi_image_free(pixels);
      out[b] = ToRgbFloat(hwc.permute({2, 0, 1}).unsqueeze(0), image_size_)[0];
      labels.push_back(labels_[idx[b]]);
    }
    return {out, at::tensor(labels, at::TensorOptions().dtype(at::kLong))};
  }

 private:
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;
  std::vector<std::string> names_;
  int64_t image_size_;
};

absl::StatusOr<std::unique_ptr<ImageDataset>> OpenImageFolder(const DataOptions& options,
                                                              const std::string& split) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("data.path: required for dataset image_folder");
  }
  std::error_code ec;
  fs::path root(options.path);
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("data.path: image folder ", root.string(), " does not exist"));
  }
  fs::path dir = root;
  std::vector<std::string> split_names = {split};
  if (split == "test") split_names.push_back("val");
  for (const std::string& s : split_names) {
    if (fs::is_directory(root / s, ec)) {
      dir = root / s;
      break;
    }
  }
  std::vector<std::string> all_names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory()) all_names.push_back(entry.path().filename().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", dir.string(), ": ", ec.message()));
  std::sort(all_names.begin(), all_names.end());
  if (all_names.empty()) {
    return absl::NotFoundError(absl::StrCat("image folder ", dir.string(), " has no class subfolders"));
  }
  std::vector<std::string> all_files;
  std::vector<int64_t> all_labels;
  for (size_t c = 0; c < all_names.size(); ++c) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir / all_names[c], ec)) {
      if (entry.is_regular_file() && IsImageFile(entry.path())) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      all_files.push_back(std::move(f));
      all_labels.push_back(static_cast<int64_t>(c));
    }
  }
  std::vector<int64_t> kept, new_labels;
  std::vector<std::string> names;
  const int64_t subset = split == "train" ? options.train_subset : options.test_subset;
  absl::Status s = SelectExamples(all_labels, all_names, options, subset, &kept, &new_labels, &names);
  if (!s.ok()) return s;
  if (kept.empty()) {
    return absl::NotFoundError(absl::StrCat("image folder ", dir.string(),
                                            " has no .jpg/.jpeg/.png images in the selected classes"));
  }
  std::vector<std::string> files;
  files.reserve(kept.size());
  for (int64_t k : kept) files.push_back(all_files[k]);
  return std::unique_ptr<ImageDataset>(std::make_unique<ImageFolderDataset>(
      std::move(files), std::move(new_labels), std::move(names), options.image_size));
}

absl::Status KeyError(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("data.", key, ": ", what));
}

}  // namespace

absl::StatusOr<std::string> ReadGzipFile(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string out;
  std::vector<char> buf(1 << 20);
  while (true) {
    int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data: ", msg));
    }
    if (n == 0) break;
    out.append(buf.data(), n);
  }
  // gzclose reports a truncated stream / CRC mismatch of the last member.
  if (int rc = gzclose(f); rc != Z_OK) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt or truncated gzip data (zlib error ", rc, ")"));
  }
  return out;
}

absl::StatusOr<at::Tensor> ParseIdx(const std::string& bytes, uint32_t expected_magic,
                                    const std::string& path) {
  if (bytes.size() < 8) return absl::DataLossError(absl::StrCat(path, ": too short for an IDX header"));
  const uint32_t magic = ReadBigEndian32(bytes, 0);
  if (magic != expected_magic) {
    char got[16], want[16];
    std::snprintf(got, sizeof(got), "0x%08x", magic);
    std::snprintf(want, sizeof(want), "0x%08x", expected_magic);
    return absl::DataLossError(absl::StrCat(path, ": bad IDX magic number ", got, " (expected ", want, ")"));
  }
  const int ndim = static_cast<int>(expected_magic & 0xff);
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() < header) return absl::DataLossError(absl::StrCat(path, ": truncated IDX header"));
  std::vector<int64_t> dims;
  uint64_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint32_t v = ReadBigEndian32(bytes, 4 + 4 * d);
    dims.push_back(v);
    count *= v;
  }
  if (bytes.size() - header != count) {
    return absl::DataLossError(absl::StrCat(path, ": IDX header promises ", count, " bytes of data but file has ",
                                            bytes.size() - header));
  }
  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(at::kByte));
  if (count > 0) std::memcpy(t.data_ptr<uint8_t>(), bytes.data() + header, count);
  return t;
}

at::Tensor ToRgbFloat(const at::Tensor& images, int64_t size) {
  TORCH_CHECK(images.dim() == 4, "ToRgbFloat: expected [B,C,H,W], got ", images.sizes());
  at::Tensor x = images.scalar_type() == at::kByte ? images.to(at::kFloat).div_(255.0) : images.to(at::kFloat);
  const int64_t c = x.size(1);
  if (c == 1) {
    x = x.expand({x.size(0), 3, x.size(2), x.size(3)});
  } else if (c == 4) {
    x = x.narrow(1, 0, 3);
  } else {
    TORCH_CHECK(c == 3, "ToRgbFloat: expected 1, 3 or 4 channels, got ", c);
  }
  x = x.contiguous();
  if (x.size(2) == size && x.size(3) == size) return x;
  const std::vector<int64_t> out_size = {size, size};
  const bool shrinking = x.size(2) > size || x.size(3) > size;
  const c10::optional<double> no_scale;
  at::Tensor y = shrinking
                     ? at::_upsample_bilinear2d_aa(x, at::IntArrayRef(out_size), /*align_corners=*/false, no_scale, no_scale)
                     : at::upsample_bilinear2d(x, at::IntArrayRef(out_size), /*align_corners=*/false, no_scale, no_scale);
  return y.clamp_(0.0, 1.0);
}

absl::StatusOr<DataOptions> ParseDataOptions(const nlohmann::json& spec) {
  DataOptions o;
  if (spec.is_null()) return o;
  if (!spec.is_object()) return absl::InvalidArgumentError("data: must be a mapping");
  auto get_int = [&](const char* key, int64_t lo, int64_t hi, int64_t* out) -> absl::Status {
    if (!spec.contains(key) || spec[key].is_null()) return absl::OkStatus();
    const auto& v = spec[key];
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      return KeyError(key, absl::StrCat("must be an integer in [", lo, ", ", hi, "]"));
    }
    *out = v.get<int64_t>();
    return absl::OkStatus();
  };
  if (spec.contains("dataset") && !spec["dataset"].is_null()) {
    if (!spec["dataset"].is_string()) return KeyError("dataset", "must be a string");
    o.dataset = spec["dataset"].get<std::string>();
    if (o.dataset != "fashion_mnist" && o.dataset != "image_folder") {
      return KeyError("dataset", absl::StrCat("unknown dataset '", o.dataset, "' (known: fashion_mnist, image_folder)"));
    }
  }
  if (spec.contains("path") && !spec["path"].is_null()) {
    if (!spec["path"].is_string()) return KeyError("path", "must be a string");
    o.path = spec["path"].get<std::string>();
  }
  absl::Status s = get_int("image_size", 8, 1024, &o.image_size);
  if (!s.ok()) return s;
  if (s = get_int("train_subset", 0, int64_t{1} << 40, &o.train_subset); !s.ok()) return s;
  if (s = get_int("test_subset", 0, int64_t{1} << 40, &o.test_subset); !s.ok()) return s;
  int64_t seed = 0;
  if (s = get_int("subset_seed", 0, std::numeric_limits<int64_t>::max(), &seed); !s.ok()) return s;
  o.subset_seed = static_cast<uint64_t>(seed);
  if (spec.contains("classes") && !spec["classes"].is_null()) {
    const auto& c = spec["classes"];
    if (!c.is_array()) return KeyError("classes", "must be a list of class names");
    for (size_t i = 0; i < c.size(); ++i) {
      if (!c[i].is_string()) return KeyError(absl::StrCat("classes[", i, "]"), "must be a string");
      o.classes.push_back(c[i].get<std::string>());
    }
  }
  return o;
}

absl::StatusOr<std::unique_ptr<ImageDataset>> OpenDatasetWithOptions(const DataOptions& options,
                                                                     const std::string& split) {
  if (split != "train" && split != "test") {
    return absl::InvalidArgumentError(absl::StrCat("split must be 'train' or 'test', got '", split, "'"));
  }
  if (options.dataset == "fashion_mnist") return OpenFashionMnist(options, split);
  if (options.dataset == "image_folder") return OpenImageFolder(options, split);
  return absl::InvalidArgumentError(absl::StrCat("data.dataset: unknown dataset '", options.dataset, "'"));
}

absl::StatusOr<std::unique_ptr<ImageDataset>> OpenDataset(const nlohmann::json& data_spec,
                                                          const std::string& split) {
  absl::StatusOr<DataOptions> options = ParseDataOptions(data_spec);
  if (!options.ok()) return options.status();
  return OpenDatasetWithOptions(*options, split);
}

}  // namespace topolab::science
