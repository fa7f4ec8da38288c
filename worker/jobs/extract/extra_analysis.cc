// The table of extract analyses (extra_analysis.h).
#include "worker/jobs/extract/extra_analysis.h"

#include <system_error>

namespace topolab::worker {

namespace fs = std::filesystem;

// Declared here, defined in each analysis' own .cc (one row each below).
absl::StatusOr<nlohmann::json> RunAllTnnMaps(const ExtraAnalysisInput& in);  // alltnn_maps.h
absl::StatusOr<nlohmann::json> RunCorruptionRobustness(const ExtraAnalysisInput& in);  // corruption_robustness.h
absl::StatusOr<nlohmann::json> RunEncodingAnalysis(const ExtraAnalysisInput& in);     // encoding_analyses.h
absl::StatusOr<nlohmann::json> RunPcaAnalysis(const ExtraAnalysisInput& in);          // encoding_analyses.h
absl::StatusOr<nlohmann::json> RunLinearProbeAnalysis(const ExtraAnalysisInput& in);  // encoding_analyses.h

fs::path ExtraAnalysisInput::Dir(const std::string& name) const {
  fs::path dir = ctx->out_dir / name;
  fs::create_directories(dir);
  return dir;
}

void ExtraAnalysisInput::AnnounceDir(const std::string& name) const {
  std::error_code ec;
  const fs::path dir = ctx->out_dir / name;
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    ctx->reporter->ArtifactReady(fs::relative(e.path(), ctx->out_dir).generic_string());
  }
}

const std::vector<ExtraAnalysis>& ExtraAnalyses() {
  static const std::vector<ExtraAnalysis>* table = new std::vector<ExtraAnalysis>{
      {"alltnn_maps", "All-TNN orientation/category/energy maps on the sheet", RunAllTnnMaps},
      {"corruption_robustness", "top-1 accuracy under the 15 common corruptions x 5 severities (V1 ResNets)",
       RunCorruptionRobustness},
      {"encoding", "ridge encoding score of layers on user neural data (.npy responses)",
       RunEncodingAnalysis},
      {"pca", "PCA variance spectrum and effective dimensionality of layer activations",
       RunPcaAnalysis},
      {"linear_probe", "logistic-regression probe on frozen features (data train -> test split)",
       RunLinearProbeAnalysis},
  };
  return *table;
}

const ExtraAnalysis* FindExtraAnalysis(const std::string& name) {
  for (const ExtraAnalysis& a : ExtraAnalyses()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace topolab::worker
