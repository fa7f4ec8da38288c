// The table of built-in job kinds. Explicit on purpose: no static
// initialisers, so linking order never decides which kinds exist. Each kind
// owner adds one include and one row.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "worker/jobs/analyze/analyze_job.h"
#include "worker/jobs/extract/extract_job.h"
#include "worker/jobs/job.h"
#include "worker/jobs/sleep/sleep_job.h"
#include "worker/jobs/swapopt/swapopt_job.h"
#include "worker/jobs/train/train_job.h"

namespace topolab::worker {
namespace {

struct KindEntry {
  const char* kind;
  std::unique_ptr<Job> (*make)();
};

// Keep sorted by kind.
constexpr KindEntry kKinds[] = {
    {"analyze", &MakeAnalyzeJob},
    {"extract", &MakeExtractJob},
    {"sleep", &MakeSleepJob},
    {"swapopt", &MakeSwapoptJob},
    {"train", &MakeTrainJob},
};

}  // namespace

std::unique_ptr<Job> MakeJob(const std::string& kind) {
  for (const KindEntry& entry : kKinds) {
    if (kind == entry.kind) return entry.make();
  }
  return nullptr;
}

std::vector<std::string> RegisteredJobKinds() {
  std::vector<std::string> kinds;
  for (const KindEntry& entry : kKinds) kinds.emplace_back(entry.kind);
  return kinds;
}

}  // namespace topolab::worker
