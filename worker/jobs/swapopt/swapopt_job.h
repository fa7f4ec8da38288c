// The `swapopt` job kind: TDANN Stage C (spec tdann.md §3). Optimises where
// each unit of a layer sits on its cortical sheet so that nearby units have
// correlated responses, then recomputes the training-neighbourhood pool.
//
// Two modes, chosen by the spec:
//
// Pipeline (no `inputs.responses`): loads the newest checkpoint of
// `swapopt.checkpoint_from` (default: the first stage in `needs`; its
// `checkpoints/final.pt`, else the highest `checkpoints/step_N.pt`), records
// the block outputs for the 640 sine gratings (worker/science/stimuli, at
// `image_size` px, the checkpoint's size by default), and runs SwapOpt on
// every layer in `swapopt.layers` (default: all of the model's layers).
// Start positions: `positions_from/<stage>/positions/<layer>.npy`, or a
// fresh retinotopic sheet (spec §2, `scale`, `jitter_mm`, seeded). Window
// width: `width_mm`, or the layer's hypercolumn width. Layers run in
// parallel on the job's threads (each layer's result is deterministic for
// its seed, whatever the thread count). Writes
//   positions_initial/<layer>.npy   float32 [U, 2] mm, before SwapOpt
//   positions/<layer>.npy           float32 [U, 2] mm, after SwapOpt
//   neighborhoods/<layer>.npy       int64 [P, K] training pool on the new positions
//   metrics.json                    per layer: units, side_mm, width_mm,
//                                   windows_used, swaps_attempted/accepted,
//                                   mean_cost_before/after (per-window, the
//                                   "mean local cost"), eval_cost_before/after
//                                   (same fixed windows on both layouts),
//                                   pool_rows, pool_k, seconds; plus settings.
//
// Standalone (`inputs: {responses: R.npy, positions: P.npy}`, R images×units
// float32, P units×2 mm; `swapopt.width_mm` > 0 required): one layer, all
// threads on its windows. Writes positions.npy, neighborhoods.npy and
// metrics.json (same per-layer keys, under "layers": {"input": ...}).
//
// Metrics reported while running: progress = windows done / total; at the
// end per layer "<layer>/cost_before", "<layer>/cost_after",
// "<layer>/accepted_fraction". Cancellation is honoured between windows.
// Errors: InvalidArgument for bad settings or input shapes (naming the key
// or file), NotFound for missing checkpoints/position files, DataLoss for
// unreadable .npy files, Cancelled.
#ifndef TOPOLAB_WORKER_JOBS_SWAPOPT_SWAPOPT_JOB_H_
#define TOPOLAB_WORKER_JOBS_SWAPOPT_SWAPOPT_JOB_H_

#include <memory>

#include "worker/jobs/job.h"

namespace topolab::worker {

std::unique_ptr<Job> MakeSwapoptJob();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_SWAPOPT_SWAPOPT_JOB_H_
