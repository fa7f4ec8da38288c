// The table of extract analyses (extra_analysis.h).
#include "worker/jobs/extract/extra_analysis.h"

#include <system_error>

namespace topolab::worker {

namespace fs = std::filesystem;

// Declared here, defined in each analysis' own .cc (one row each below).
absl::StatusOr<nlohmann::json> RunAllTnnMaps(const ExtraAnalysisInput& in);  // alltnn_maps.h

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
