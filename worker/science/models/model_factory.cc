// model.family -> VisionModel. The one place that knows every family.
#include "worker/science/models/model_factory.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/science/families/alltnn.h"
#include "worker/science/families/expansion.h"
#include "worker/science/families/v1resnet.h"
#include "worker/science/models/resnet.h"

namespace topolab::science {
namespace {

struct FamilyEntry {
  const char* name;
  ModelBuilder build;
};

// One row per model family. Families living in other libraries add their
// row here (and link their library in models/CMakeLists.txt).
const FamilyEntry kFamilies[] = {
    {"resnet18", &MakeResNet18Model},
    {"alltnn", &MakeAllTnnModel},        // worker/science/families/alltnn.h
    {"v1resnet", &MakeV1ResNetModel},    // worker/science/families/v1resnet.h
    {"expansion", &MakeExpansionModel},  // worker/science/families/expansion.h
};

absl::StatusOr<int64_t> IntKey(const nlohmann::json& spec, const char* key, int64_t fallback,
                               int64_t lo, int64_t hi) {
  if (!spec.is_object() || !spec.contains(key) || spec[key].is_null()) return fallback;
  const auto& v = spec[key];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    return absl::InvalidArgumentError(absl::StrCat("model.", key, ": must be an integer in [", lo, ", ", hi, "]"));
  }
  return v.get<int64_t>();
}

}  // namespace

absl::StatusOr<std::shared_ptr<VisionModel>> MakeResNet18Model(const nlohmann::json& model_spec,
                                                               int64_t num_classes) {
  ResNet18Options o;
  o.num_classes = num_classes;
  absl::StatusOr<int64_t> v = IntKey(model_spec, "projection_dim", o.projection_dim, 0, 65536);
  if (!v.ok()) return v.status();
  o.projection_dim = *v;
  v = IntKey(model_spec, "hidden_dim", o.hidden, 1, 65536);
  if (!v.ok()) return v.status();
  o.hidden = *v;
  return std::shared_ptr<VisionModel>(std::make_shared<ResNet18Impl>(o));
}

std::vector<std::string> KnownModelFamilies() {
  std::vector<std::string> names;
  for (const auto& f : kFamilies) names.push_back(f.name);
  return names;
}

absl::StatusOr<std::shared_ptr<VisionModel>> MakeModel(const nlohmann::json& model_spec,
                                                       int64_t default_num_classes) {
  if (!model_spec.is_null() && !model_spec.is_object()) {
    return absl::InvalidArgumentError("model: must be a mapping");
  }
  std::string family = "resnet18";
  if (model_spec.is_object() && model_spec.contains("family") && !model_spec["family"].is_null()) {
    if (!model_spec["family"].is_string()) return absl::InvalidArgumentError("model.family: must be a string");
    family = model_spec["family"].get<std::string>();
  }
  absl::StatusOr<int64_t> num_classes = IntKey(model_spec, "num_classes", 0, 0, 1 << 20);
  if (!num_classes.ok()) return num_classes.status();
  const int64_t classes = *num_classes > 0 ? *num_classes : default_num_classes;
  for (const auto& f : kFamilies) {
    if (family == f.name) return f.build(model_spec, classes);
  }
  return absl::InvalidArgumentError(absl::StrCat("model.family: unknown family '", family, "' (known: ",
                                                 absl::StrJoin(KnownModelFamilies(), ", "), ")"));
}

}  // namespace topolab::science
