// `kind: extract` — activations of a checkpoint to stimuli, analyses, maps.
// Owner after the engine landed: the analysis engineer.
#include "proto/config/schema.h"

namespace topolab::config {

KindSchema ExtractSchema() {
  KindSchema k;
  k.kind = "extract";
  k.doc = "run a checkpoint over stimulus sets, save activations, run analyses and draw maps";
  k.uses_data = true;
  k.fields = {
      StringList("stimuli").Default(Json::array({"sine_gratings", "categories"}))
          .Allowed({"sine_gratings", "categories"}).NonEmpty().Doc("stimulus sets"),
      StringList("layers").Default(Json::array()).Doc("layers to extract (empty = all 8 blocks)"),
      Bool("float16").Default(false).Doc("store activations as float16"),
      Bool("save_activations").Default(true).Doc("write activations .npy artifacts"),
      StringList("analyses").Default(Json::array()).Doc("analyses to run (empty = all that apply)"),
      Int("batch_size").Default(64).Range(1, 65536).Doc("images per forward pass"),
      String("categories_path").Default("").Path(PathCheck::kDirectory)
          .Doc("fLoc-style folder (one subfolder per category); empty = built-in Fashion-MNIST sets"),
      String("positions_from").Default("").StageRef()
          .Doc("stage id (in needs) whose positions artifact lays out the units"),
  };
  return k;
}

}  // namespace topolab::config
