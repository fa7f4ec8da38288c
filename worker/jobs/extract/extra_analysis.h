// Model-level analyses of the extract job beyond TDANN's stimulus-set
// reports: a family's own maps (All-TNN sheets and energy), corruption
// robustness (V1 ResNets), encoding scores / PCA / linear probes (expansion
// model, or any family). A job lists them in `analyses:`; each one gets the
// loaded model and writes its files under out_dir/<name>/, and its returned
// JSON lands in metrics.json under metrics["analyses"][<name>].
//
// Adding one: write `absl::StatusOr<nlohmann::json> RunFoo(const
// ExtraAnalysisInput&)` in its own .cc under worker/jobs/extract/, add one
// row to the table in extra_analysis.cc, its name to the `analyses` enum and
// its options object to proto/config/schema_extract.cc.
#ifndef TOPOLAB_WORKER_JOBS_EXTRACT_EXTRA_ANALYSIS_H_
#define TOPOLAB_WORKER_JOBS_EXTRACT_EXTRA_ANALYSIS_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/jobs/job.h"
#include "worker/science/models/vision_model.h"

namespace topolab::worker {

struct ExtraAnalysisInput {
  JobContext* ctx = nullptr;            // out_dir, inputs_dir, device, reporter
  science::VisionModel* net = nullptr;  // loaded, eval mode, on ctx->device
  nlohmann::json spec;                  // the whole extract spec (own keys under spec[<name>])
  nlohmann::json data_spec;             // the resolved `data:` block (checkpoint's if the job has none)
  nlohmann::json checkpoint_meta;       // meta of the loaded checkpoint (class_names, image_size, ...)
  int64_t image_size = 0;               // stimulus side in px
  int64_t batch_size = 64;              // images per forward pass
  // Raw images [B,3,S,S] in [0,1] (any device) -> model input (normalised).
  std::function<at::Tensor(const at::Tensor&)> preprocess;
  // Fraction of this analysis done, in [0, 1]; the job maps it onto its own
  // progress. May be left uncalled.
  std::function<void(double)> progress;

  // out_dir/<name>/, created.
  std::filesystem::path Dir(const std::string& name) const;
  // Announces every regular file under out_dir/<name>/ as an artifact.
  void AnnounceDir(const std::string& name) const;
};

using ExtraAnalysisFn = std::function<absl::StatusOr<nlohmann::json>(const ExtraAnalysisInput&)>;

struct ExtraAnalysis {
  std::string name;  // as written in `analyses:`
  std::string doc;   // one line
  ExtraAnalysisFn run;
};

// Every analysis, in table order.
const std::vector<ExtraAnalysis>& ExtraAnalyses();
// nullptr if `name` is unknown.
const ExtraAnalysis* FindExtraAnalysis(const std::string& name);

}  // namespace topolab::worker

#endif  // TOPOLAB_WORKER_JOBS_EXTRACT_EXTRA_ANALYSIS_H_
