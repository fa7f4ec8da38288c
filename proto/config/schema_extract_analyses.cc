// `kind: extract` — the options objects of the model-level analyses listed in
// `analyses:` (worker/jobs/extract/extra_analysis.h). One function per
// analysis; the worker reads the same keys in worker/jobs/extract/<name>.cc.
#include <vector>

#include "proto/config/schema.h"

namespace topolab::config {

// Names accepted in `analyses:` (keep in step with extra_analysis.cc).
std::vector<std::string> ExtraAnalysisNames() {
  return {"alltnn_maps", "corruption_robustness", "encoding", "pca", "linear_probe"};
}

// One options object per analysis, named like the analysis.
std::vector<Field> ExtraAnalysisFields() {
  return {
      Object("alltnn_maps", {}).Doc("All-TNN sheet maps (analyses: [alltnn_maps])"),
      Object("corruption_robustness", {}).Doc("corruption robustness (analyses: [corruption_robustness])"),
      Object("encoding", {}).Doc("encoding score on neural data (analyses: [encoding])"),
      Object("pca", {}).Doc("PCA spectrum (analyses: [pca])"),
      Object("linear_probe", {}).Doc("linear-probe classification (analyses: [linear_probe])"),
  };
}

}  // namespace topolab::config
