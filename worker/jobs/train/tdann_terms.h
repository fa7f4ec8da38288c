// The TDANN parts of the `train` job (spec tdann.md §4–5), plugged into the
// train loop through its objective / loss-term seam (objective.h):
//
//   objective: simclr     SimClrObjective: two augmented views per image
//                         (science/ssl SimClrAugment, from the run's seeded
//                         generator), ONE forward pass over the 2B views,
//                         VisionModel::Project, NT-Xent with
//                         simclr.temperature (0.1). Reports task_loss.
//
//   spatial_weight: α > 0 SpatialLossTerm: for each spatial layer (spatial.layers,
//                         default every layer of the model) and each step,
//                         `spatial.neighborhoods_per_step` (1) neighbourhoods
//                         drawn uniformly from the layer's pool; the layer's
//                         SL_Rel (or SL_Abs, spatial.loss / spatial.rel_form)
//                         over all rows of the batch (both SimCLR views),
//                         weighted by α_layer = spatial.layer_weights[layer]
//                         if given, else spatial_weight. Adds
//                         Σ α_layer · SL_layer to the loss and reports
//                         "spatial_loss" (the weighted sum) and
//                         "spatial_loss/<layer>" (unweighted) as metrics.
//
// Positions: `positions_from: <stage>` reads
// inputs_dir/<stage>/positions/<layer>.npy (and that stage's
// neighborhoods/<layer>.npy pool when present, else the pool is built on the
// positions). Without positions_from, fresh retinotopic sheets are built
// (spec §2; spatial.scale human|train, spatial.jitter_mm, seeded by the job
// seed) at the first step, when the layer shapes are known. Either way the
// positions used and the pool are written as artifacts
// positions/<layer>.npy (float32 [U,2] mm) and neighborhoods/<layer>.npy
// (int64 [P,K]), so downstream stages (extract) can read them.
//
// Thread-compatible: driven by the train loop's thread.
#ifndef TOPOLAB_WORKER_JOBS_TRAIN_TDANN_TERMS_H_
#define TOPOLAB_WORKER_JOBS_TRAIN_TDANN_TERMS_H_

#include <memory>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/jobs/job.h"
#include "worker/jobs/train/objective.h"

namespace topolab::worker {

// The SimCLR objective. InvalidArgument for a bad `simclr` section.
absl::StatusOr<std::unique_ptr<TrainObjective>> MakeSimClrObjective(const nlohmann::json& job_spec);

// The spatial loss term, or nullptr when spatial_weight is 0 and no
// layer_weights are positive. InvalidArgument names a bad key (unknown
// layer, bad loss name); NotFound/DataLoss for missing or unreadable
// positions_from files (checked here, before training starts).
// `context` must outlive the term.
absl::StatusOr<std::unique_ptr<LossTerm>> MakeSpatialLossTerm(const nlohmann::json& job_spec,
                                                              const science::VisionModel& model,
                                                              const JobContext& context);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_TRAIN_TDANN_TERMS_H_
