// `kind: swapopt` — SwapOpt of unit positions (TDANN spec §3).
// Owner after the engine landed: the tdann engineer.
#include "proto/config/schema.h"

namespace topolab::config {

KindSchema SwapoptSchema() {
  KindSchema k;
  k.kind = "swapopt";
  k.doc = "optimise unit positions by swapping (from a checkpoint in needs, or standalone inputs)";
  k.uses_data = false;
  k.fields = {
      Object("swapopt", {
          Int("neighborhoods").Default(100000).Range(1, 1000000000).Doc("windows to optimise"),
          Int("swaps_per_neighborhood").Default(500).Range(1, 10000000).Doc("swap attempts per window"),
          Double("width_mm").Default(0.0).Range(0, 1000).Doc("window width in mm (0 = layer default)"),
          Int("max_units").Default(500).Range(2, 1000000).Doc("units per window at most"),
          StringList("layers").Default(Json::array()).Doc("layers to optimise (empty = all 8 blocks)"),
          Int("seed").Range(0, 9007199254740991.0).Doc("defaults to the job's seed"),
      }).Doc("SwapOpt settings"),
      Object("inputs", {
          String("responses").Default("").Path(PathCheck::kFile)
              .Doc("standalone: responses .npy (images x units, float32)"),
          String("positions").Default("").Path(PathCheck::kFile)
              .Doc("standalone: positions .npy (units x 2, mm)"),
      }).Doc("standalone inputs (instead of a checkpoint from needs)"),
  };
  k.finalize = [](Json& spec) {
    if (!spec["swapopt"].contains("seed")) spec["swapopt"]["seed"] = spec["seed"];
  };
  return k;
}

}  // namespace topolab::config
