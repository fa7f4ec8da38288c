// `model:` — which network a job builds. One set of keys per `family`; the
// families engineer adds the keys of alltnn / v1resnet / expansion here.
#include "proto/config/schema.h"

namespace topolab::config {

Field ModelSchema() {
  Field f = TaggedObject("model", "family", {
      Enum("family", {"resnet18", "alltnn", "v1resnet", "expansion"}).Default("resnet18")
          .Doc("model family"),
  });
  f.Variant("resnet18", {
      Int("num_classes").Default(0).Range(0, 100000)
          .Doc("classifier outputs; 0 = the number of classes of the dataset"),
      Int("projection_dim").Default(128).Range(1, 65536).Doc("SimCLR projection output size"),
      Int("hidden_dim").Default(512).Range(1, 65536).Doc("SimCLR projection hidden size"),
  });
  f.Variant("alltnn", {});
  f.Variant("v1resnet", {});
  f.Variant("expansion", {});
  f.Doc("the network; stages may override keys (a different family replaces the whole block)");
  return f;
}

}  // namespace topolab::config
