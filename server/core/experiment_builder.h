// Turns a submitted experiment YAML into the rows the scheduler stores.
//
// Parsing and validation (proto/config) happen here, on the caller's thread
// (the gRPC thread of SubmitExperiment), so the core thread only does the
// cheap part and submits parse in parallel. Thread-safe: no shared state.
#ifndef TOPOLAB_SERVER_CORE_EXPERIMENT_BUILDER_H_
#define TOPOLAB_SERVER_CORE_EXPERIMENT_BUILDER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace topolab::server {

// Parses and validates `yaml` with config::ParseExperimentYaml (dataset paths
// are not checked: the scheduler may not share a file system with workers)
// and returns an experiment whose ids and timestamps are still empty
// (Scheduler::Submit assigns them). The YAML is kept verbatim, with the
// normalised JSON and its hash. `default_owner` is used when the file has no
// `owner` ("anonymous" when both are empty).
// Returns InvalidArgument whose message starts with the field path.
absl::StatusOr<NewExperiment> BuildExperiment(std::string_view yaml,
                                              const std::string& default_owner);

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_CORE_EXPERIMENT_BUILDER_H_
