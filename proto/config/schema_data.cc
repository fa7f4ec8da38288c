// `data:` — the dataset a job reads. One set of keys per `dataset`.
#include "proto/config/schema.h"

namespace topolab::config {

Field DataSchema() {
  Field f = TaggedObject("data", "dataset", {
      Enum("dataset", {"fashion_mnist", "image_folder"}).Default("fashion_mnist").Doc("dataset type"),
      Int("image_size").Default(32).Range(8, 1024).Doc("images are resized to image_size x image_size"),
      Int("train_subset").Default(0).Min(0)
          .Doc("use a seeded random choice of N training images (0 = all)"),
      Int("test_subset").Default(0).Min(0).Doc("use a seeded random choice of N test images (0 = all)"),
      Int("subset_seed").Default(0).Range(0, 9007199254740991.0).Doc("seed of the subset choice"),
      StringList("classes").Default(Json::array())
          .Doc("keep only these class names, relabelled 0..k-1 in this order (empty = all)"),
  });
  f.Variant("fashion_mnist", {
      String("path").Default("/usr/share/datasets/fashion-mnist").NonEmpty().Path(PathCheck::kDirectory)
          .Doc("folder with the gzip IDX files (Debian package dataset-fashion-mnist)"),
  });
  f.Variant("image_folder", {
      String("path").Required().NonEmpty().Path(PathCheck::kDirectory)
          .Doc("root folder of images, one subfolder per class; if it has train/ and test/ (or val/) "
               "subfolders those are the splits, otherwise both splits read the root"),
  });
  f.Doc("the dataset; stages may override keys (a different dataset replaces the whole block)");
  return f;
}

}  // namespace topolab::config
