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
          Double("width_mm").Default(0.0).Range(0, 1000)
              .Doc("window width in mm (0 = the layer's neighbourhood width; required standalone)"),
          Int("max_units").Default(500).Range(2, 1000000).Doc("units per window at most"),
          Int("min_units").Default(5).Range(2, 1000000).Doc("windows with fewer units are skipped"),
          Enum("accept", {"strict", "nonworse"}).Default("strict")
              .Doc("keep a swap only if the cost fell (strict, OFFICIAL) or did not rise (nonworse)"),
          Enum("cost", {"two_row", "full_window"}).Default("two_row")
              .Doc("swap cost over the two swapped rows (OFFICIAL) or all window pairs (REPRO)"),
          StringList("layers").Default(Json::array()).Doc("layers to optimise (empty = all 8 blocks)"),
          Int("seed").Range(0, 9007199254740991.0).Doc("defaults to the job's seed"),
          String("checkpoint_from").Default("").StageRef()
              .Doc("stage whose checkpoints/ to load (empty = the first of needs)"),
          String("positions_from").Default("").StageRef()
              .Doc("stage whose positions/<layer>.npy are the start (empty = fresh retinotopic sheet)"),
          Enum("scale", {"human", "train"}).Default("human")
              .Doc("cortical sheet size table for fresh sheets and default widths"),
          Double("jitter_mm").Default(0.3).Range(0, 1000).Doc("sheet jitter sd for fresh sheets"),
          Int("image_size").Default(0).Range(0, 4096).Doc("grating size in px (0 = the checkpoint's)"),
          Int("batch_size").Default(64).Range(1, 65536).Doc("gratings per forward pass"),
          Enum("normalize", {"imagenet", "none"}).Default("imagenet").Doc("input normalisation"),
          Int("eval_windows").Default(200).Range(0, 100000000)
              .Doc("fixed random windows on which the local cost is measured before and after"),
          Int("pool_windows").Default(20000).Range(1, 100000000)
              .Doc("windows drawn for the recomputed training-neighbourhood pool"),
          Double("pool_percentile").Default(5.0).Range(0, 100).Doc("pool size cutoff percentile"),
          Int("pool_min_size").Default(25).Range(2, 1000000).Doc("floor of the pool size cutoff"),
          Int("pool_max_size").Default(500).Range(2, 1000000).Doc("cap of the pool size"),
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
