// Builds a VisionModel from the job spec's `model` section, dispatching on
// `model.family`. Target `topolab_science_model_factory` (separate from
// `topolab_science_models` because it links every family library).
//
//   model:
//     family: resnet18            (default resnet18)
//     num_classes: N              supervised head width; 0 or absent = the
//                                 caller's default (the dataset's class count)
//     projection_dim: 128         SimCLR head output (resnet18; 0 = no head)
//     hidden_dim: 512             SimCLR head hidden width (resnet18)
//     ... family-specific keys (see each family's header)
//
// Adding a family: write `absl::StatusOr<std::shared_ptr<VisionModel>>
// MakeFooModel(const nlohmann::json& model_spec, int64_t num_classes)` in its
// own library and add one row {"foo", &MakeFooModel} to kFamilies in
// model_factory.cc (and the library to models/CMakeLists.txt's factory).
#ifndef TOPOLAB_WORKER_SCIENCE_MODELS_MODEL_FACTORY_H_
#define TOPOLAB_WORKER_SCIENCE_MODELS_MODEL_FACTORY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/science/models/vision_model.h"

namespace topolab::science {

using ModelBuilder = absl::StatusOr<std::shared_ptr<VisionModel>> (*)(
    const nlohmann::json& model_spec, int64_t num_classes);

// Builds the model described by `model_spec` (the `model` object; null or
// empty = resnet18 defaults), initialised from the current torch RNG state
// (call torch::manual_seed first for reproducible weights), on CPU.
// `default_num_classes` is used when the spec has no (or 0) num_classes.
// Returns InvalidArgument naming the key ("model.family: unknown family
// 'foo' (known: resnet18, ...)").
absl::StatusOr<std::shared_ptr<VisionModel>> MakeModel(const nlohmann::json& model_spec,
                                                       int64_t default_num_classes);

// The family names MakeModel accepts.
std::vector<std::string> KnownModelFamilies();

// The resnet18 builder (also used directly by tests).
absl::StatusOr<std::shared_ptr<VisionModel>> MakeResNet18Model(const nlohmann::json& model_spec,
                                                               int64_t num_classes);

}  // namespace topolab::science

#endif  // TOPOLAB_WORKER_SCIENCE_MODELS_MODEL_FACTORY_H_
