// Top-level experiment keys, the keys every stage has, and the table of kinds.
//
// A new job kind: write schema_<kind>.cc with `KindSchema <Kind>Schema()`,
// declare it in schema.h, and add it to AllKinds() below.
#include <regex>

#include "proto/config/schema.h"

namespace topolab::config {
namespace {

std::string CheckStageId(const Json& v) {
  static const std::regex kId("[A-Za-z0-9_-]{1,64}");
  if (!std::regex_match(v.get<std::string>(), kId)) {
    return "must match [A-Za-z0-9_-]{1,64}, got \"" + v.get<std::string>() + "\"";
  }
  return "";
}

}  // namespace

Field ResourcesSchema() {
  return Object("resources", {
      Enum("device", {"cpu", "cuda"}).Default("cpu")
          .Doc("device type a worker must offer; with cpu, gpus and gpu_memory_gb are set to 0"),
      Int("gpus").Default(0).Range(0, 64)
          .Doc("GPUs per job; 0 with device cuda means 1"),
      Double("gpu_memory_gb").Default(0.0).Range(0, 4096)
          .Doc("minimum memory per GPU in GB (0 = any)"),
  }).Doc("what a worker must offer to run the job; stages may override");
}

std::vector<Field> ExperimentFields() {
  return {
      String("name").Required().NonEmpty().MaxLength(128).Doc("experiment name (used by `topolab ls --name`)"),
      String("owner").NonEmpty().MaxLength(64).Doc("defaults to the submitting user ($USER)"),
      String("description").Default("").MaxLength(4096).Doc("free text"),
      Int("priority").Default(0).Range(-1000, 1000).Doc("higher runs first"),
      Int("seed").Default(0).Range(0, 9007199254740991.0)
          .Doc("random seed; every stage inherits it unless it sets its own"),
  };
}

std::vector<Field> StageCommonFields() {
  return {
      String("id").Required().Check(CheckStageId).Doc("unique within the experiment: [A-Za-z0-9_-]{1,64}"),
      String("kind").Required().Doc("job kind (see KnownJobKinds)"),
      StringList("needs").Default(Json::array()).MaxLength(1000)
          .Doc("stage ids that must succeed first; their artifacts become this job's inputs"),
      Int("max_attempts").Default(3).Range(1, 100).Doc("runs before the job is marked failed"),
      Int("seed").Range(0, 9007199254740991.0).Doc("overrides the experiment's seed"),
  };
}

const std::vector<KindSchema>& AllKinds() {
  static const std::vector<KindSchema>* kinds = new std::vector<KindSchema>{
      TrainSchema(), SwapoptSchema(), ExtractSchema(), AnalyzeSchema(), SleepSchema(),
  };
  return *kinds;
}

const KindSchema* FindKind(const std::string& kind) {
  for (const auto& k : AllKinds()) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

}  // namespace topolab::config
