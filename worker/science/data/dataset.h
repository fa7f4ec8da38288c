// Image datasets for training and evaluation: Fashion-MNIST read straight
// from the Debian package's gzip IDX files, and ImageNet-style folders (one
// subfolder per class, JPEG/PNG). Every dataset yields 3-channel float32
// images in [0, 1] resized to a square side `image_size`, plus int64 labels;
// normalisation (ImageNet mean/std) and augmentation are the caller's job.
//
// The job spec's `data` object selects and shapes a dataset:
//
//   data:
//     dataset: fashion_mnist | image_folder   (default fashion_mnist)
//     path: DIR        fashion_mnist: folder holding the four *-ubyte.gz files
//                      (default /usr/share/datasets/fashion-mnist);
//                      image_folder: root folder (required). If DIR/<split>
//                      exists it is used (split "test" also tries "val"),
//                      otherwise DIR itself is the class folder for both splits.
//     image_size: S    output side in px (default 32), 8..1024
//     train_subset: N  keep N images of the train split (0 = all, default 0)
//     test_subset: N   same for the test split
//     subset_seed: K   seed of the subset choice (default 0)
//     classes: [...]   keep only these class names, relabelled 0..k-1 in the
//                      listed order (default: all classes)
//
// A subset is a seeded random choice of N indices (kept in ascending order),
// so the same spec always yields the same images.
#ifndef TOPOLAB_WORKER_SCIENCE_DATA_DATASET_H_
#define TOPOLAB_WORKER_SCIENCE_DATA_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace topolab::science {

// A random-access set of labelled images. Implementations are immutable
// after construction and safe to call from several threads.
class ImageDataset {
 public:
  virtual ~ImageDataset() = default;
  virtual int64_t size() const = 0;
  // Class names; label i names class_names()[i].
  virtual const std::vector<std::string>& class_names() const = 0;
  // Output side in px.
  virtual int64_t image_size() const = 0;
  // images [B,3,S,S] float32 in [0,1] (resized to image_size), labels [B]
  // int64. REQUIRES: every index in [0, size()). Throws std::runtime_error
  // naming the file if an image cannot be decoded (folder datasets load
  // lazily, per batch).
  virtual std::pair<at::Tensor, at::Tensor> GetBatch(const std::vector<int64_t>& idx) const = 0;
};

// Parsed `data` section (see the file comment for the keys).
struct DataOptions {
  std::string dataset = "fashion_mnist";
  std::string path;                 // "" = the dataset's default location
  int64_t image_size = 32;
  int64_t train_subset = 0;
  int64_t test_subset = 0;
  uint64_t subset_seed = 0;
  std::vector<std::string> classes;
};

inline constexpr char kDefaultFashionMnistPath[] = "/usr/share/datasets/fashion-mnist";

// Reads a `data` object. Missing keys keep their defaults. Returns
// InvalidArgument naming the key ("data.image_size: must be an integer in
// [8, 1024]") on a wrong type or value. Unknown keys are ignored (the config
// validator, proto/config/schema_data.cc, rejects them at submit time).
absl::StatusOr<DataOptions> ParseDataOptions(const nlohmann::json& data_spec);

// data_spec = the job spec's "data" object. split: "train" | "test".
// Returns InvalidArgument for a bad spec or split, NotFound when a file or
// folder is missing, DataLoss for a corrupt file (bad gzip, magic number or
// size; the message names the file).
absl::StatusOr<std::unique_ptr<ImageDataset>> OpenDataset(const nlohmann::json& data_spec,
                                                          const std::string& split);
absl::StatusOr<std::unique_ptr<ImageDataset>> OpenDatasetWithOptions(const DataOptions& options,
                                                                     const std::string& split);

// --- Building blocks, exposed for tests and other loaders -------------------

// Decompresses a whole gzip (or plain) file. NotFound / DataLoss name the path.
absl::StatusOr<std::string> ReadGzipFile(const std::string& path);

// Parses an IDX file's bytes (big-endian header). `expected_magic` is
// 0x00000803 for images (returns [N,rows,cols] uint8) or 0x00000801 for labels
// (returns [N] uint8). DataLoss names `path` on a wrong magic number or size.
absl::StatusOr<at::Tensor> ParseIdx(const std::string& bytes, uint32_t expected_magic,
                                    const std::string& path);

// [B,C,H,W] uint8 or float images -> [B,3,size,size] float32 in [0,1]:
// grayscale (C=1) is replicated to 3 channels, alpha (C=4) dropped, and the
// image resized with bilinear interpolation (align_corners=false, antialiased
// when shrinking, as torchvision's Resize). Non-square inputs are stretched.
at::Tensor ToRgbFloat(const at::Tensor& images, int64_t size);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_DATA_DATASET_H_
