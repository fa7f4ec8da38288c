// `kind: extract` — runs a trained checkpoint over stimulus sets, streams
// chosen layers' activations to .npy, runs the tdann.md §7 analyses and
// draws the maps.
//
//   kind: extract
//   needs: [train]
//   checkpoint_from: train   stage whose checkpoints/final.pt (else newest
//                            checkpoints/step_*.pt) is loaded (default: the
//                            first need)
//   positions_from: swapopt  stage whose positions/<layer>.npy lay out the
//                            units (default "": fresh retinotopic sheets,
//                            tdann/sheet.h, human scale, seed `sheet_seed`)
//   stimuli: [sine_gratings, categories]
//   layers: []               layers whose activations are saved (empty =
//                            the analysis layers)
//   v1_layer: layer2.0       grating analyses;  vtc_layer: layer4.1 category ones
//   float16: false           activations stored as float16
//   save_activations: true
//   batch_size: 64
//   normalize: imagenet      imagenet | none (model input preprocessing)
//   categories_path: ""      fLoc-style folder (one subfolder per category);
//                            "" = Fashion-MNIST test set (data.path)
//   categories: {per_category: 100, domains: {...}}  (domains default: fLoc
//                            contrasts for folders, the documented
//                            Fashion-MNIST grouping for the default)
//   gratings: {sf_spacing: linear|log, visual_field_deg: 8}
//   wiring: {enabled: true, images: 50, ...}  §7.7 on test images
//   analysis: {...}          see science/analysis/report.h
//
// Outputs (under out_dir): <set>/stimuli.json, <set>/<layer>.npy (rows =
// stimuli in stimuli.json order, columns = units flattened C-major), the
// report.h arrays and PNGs at top level, metrics.json (the analyze job's
// top-level keys plus "v1", "categories", "wiring", "layers").
//
// Memory stays flat in the number of stimuli: one batch of images and
// activations at a time, accumulators of (conditions x units).
#ifndef TOPOLAB_WORKER_JOBS_EXTRACT_EXTRACT_JOB_H_
#define TOPOLAB_WORKER_JOBS_EXTRACT_EXTRACT_JOB_H_

#include <memory>

#include "worker/jobs/job.h"

namespace topolab::worker {

std::unique_ptr<Job> MakeExtractJob();

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_EXTRACT_EXTRACT_JOB_H_
