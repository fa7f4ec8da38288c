// `data:` — the dataset a job reads. One set of keys per `dataset`.
#include "proto/config/schema.h"

namespace topolab::config {

Field DataSchema() {
  Field f = TaggedObject("data", "dataset", {
      Enum("dataset", {"fashion_mnist", "image_folder"}).Default("fashion_mnist").Doc("dataset type"),
      Int("image_size").Default(32).Range(8, 1024).Doc("images are resized to image_size x image_size"),
      Int("train_subset").Default(0).Min(0).Doc("use the first N training images (0 = all)"),
      Int("test_subset").Default(0).Min(0).Doc("use the first N test images (0 = all)"),
  });
  f.Variant("fashion_mnist", {
      String("path").Default("/usr/share/datasets/fashion-mnist").NonEmpty().Path(PathCheck::kDirectory)
          .Doc("folder with the gzip IDX files (Debian package dataset-fashion-mnist)"),
  });
  f.Variant("image_folder", {
      String("path").Required().NonEmpty().Path(PathCheck::kDirectory)
          .Doc("root folder of images, one subfolder per class (see the README for the train/test split)"),
  });
  f.Doc("the dataset; stages may override keys (a different dataset replaces the whole block)");
  return f;
}

}  // namespace topolab::config
