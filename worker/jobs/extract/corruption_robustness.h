// `analyses: [corruption_robustness]` of the extract job: top-1 accuracy of
// the checkpoint's classifier on the job's test set under the common
// corruptions of models.md §3.4 (Tiny-ImageNet-C protocol), generated on the
// fly by worker/science/families/corruptions.h. Any family with a
// supervised head works; the V1 ResNets are the ones it was written for.
//
//   corruption_robustness:
//     images: 1000          test images: a seeded random subset of the data
//                           spec's test split (0 = all of it)
//     corruptions: [...]    names from CorruptionNames() (default: all 15,
//                           in that order)
//     severities: [1,2,3,4,5]
//     seed: 0               subset choice and corruption noise
//     examples: 6           images per row of examples.png (0 = no picture)
//
// The test set is the job's `data:` block (the checkpoint's when the job has
// none): Fashion-MNIST by default, or an image folder, at the extract
// job's image size. Images in [0, 1] are corrupted, then preprocessed with
// the job's `normalize`, then classified.
//
// Files under out_dir/corruption_robustness/:
//   robustness.json  RobustnessResult::ToJson() (accuracy per corruption and
//                    severity, clean, mean, mean per corruption, relative =
//                    mean / clean) plus seed, image_size, test set
//   robustness.csv   corruption,severity,accuracy: one row per cell (75 for
//                    the defaults), as the reference's CSV
//   robustness.png   heat map (corruptions x severities, plus row means)
//   examples.png     the first `examples` test images clean and under each
//                    corruption at severity 3
// Returns {clean_accuracy, mean_accuracy, relative, mean_per_corruption,
// corruptions, severities, images}, stored under
// metrics.json["analyses"]["corruption_robustness"].
//
// Errors: InvalidArgument naming the key ("corruption_robustness.
// corruptions[1]: unknown corruption \"hail\" (known: ...)") for a bad
// option; FailedPrecondition when the model has no classifier head or its
// classes do not match the test set's; the data set's own errors (NotFound,
// DataLoss) prefixed with "data: "; Cancelled when the job is cancelled
// (checked before each corruption).
#ifndef TOPOLAB_WORKER_JOBS_EXTRACT_CORRUPTION_ROBUSTNESS_H_
#define TOPOLAB_WORKER_JOBS_EXTRACT_CORRUPTION_ROBUSTNESS_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/jobs/extract/extra_analysis.h"

namespace topolab::worker {

absl::StatusOr<nlohmann::json> RunCorruptionRobustness(const ExtraAnalysisInput& in);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_EXTRACT_CORRUPTION_ROBUSTNESS_H_
