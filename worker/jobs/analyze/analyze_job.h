// `kind: analyze` — the analyses of tdann.md §7 on data users bring from
// elsewhere: an activation matrix, unit positions and a description of the
// stimuli, no model and no scheduler needed.
//
//   kind: analyze
//   inputs:
//     activations: A.npy     images x units (or images x C x H x W), any float dtype
//     positions: P.npy       units x 2, mm
//     stimuli: sine_gratings           rows are the 640 gratings in stimuli.h order
//       | {labels: L.npy, categories: [names of label values 0..K-1],
//          domains: {domain: [categories...]}}   (empty domains: fLoc or
//          Fashion-MNIST contrasts when the names match, else one domain per
//          category vs the rest)
//   analysis: {...}          options, see science/analysis/report.h
//   batch_size: 256          rows fed to the accumulators at a time
//
// Writes metrics.json with the keys opm_smoothness, pinwheel_count,
// pinwheel_density, selective_fraction (gratings; null otherwise), patches
// ({domain: {count, areas_mm2}}) and category_smoothness ({domain: score,
// mean}) (categories; null otherwise), plus "v1"/"categories" detail
// objects; and the per-unit arrays and PNGs of report.h
// (preferred_orientation_deg.npy, circular_variance.npy, t_<domain>.npy, ...).
// Relative input paths are resolved against the working directory, then
// against the job's inputs_dir.
#ifndef TOPOLAB_WORKER_JOBS_ANALYZE_ANALYZE_JOB_H_
#define TOPOLAB_WORKER_JOBS_ANALYZE_ANALYZE_JOB_H_

#include <memory>

#include "worker/jobs/job.h"

namespace topolab::worker {

std::unique_ptr<Job> MakeAnalyzeJob();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_ANALYZE_ANALYZE_JOB_H_
