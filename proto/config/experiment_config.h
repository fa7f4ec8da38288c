// Experiment YAML <-> normalised spec: the contract between a user's file,
// the CLI (which checks a file before sending it), the scheduler (which
// validates again and stores it) and the worker (which runs one stage).
//
// Validation is strict: unknown keys, wrong types, out-of-range sizes,
// unknown kinds, duplicate stage ids, missing or cyclic `needs` each give an
// InvalidArgument whose message starts with the path of the offending field,
// e.g. "stages[2].epochs: must be a positive integer".
//
// Normalisation fills every default from the schema (config/schema*.cc), so a
// worker reads each setting from the job spec without defaults of its own.
#ifndef TOPOLAB_PROTO_CONFIG_EXPERIMENT_CONFIG_H_
#define TOPOLAB_PROTO_CONFIG_EXPERIMENT_CONFIG_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace topolab::config {

struct Resources {
  std::string device = "cpu";  // "cpu" | "cuda"
  int gpus = 0;
  double gpu_memory_gb = 0;
};

// One stage of an experiment = one job.
struct StageSpec {
  std::string id;
  std::string kind;                 // "train", "swapopt", "extract", "analyze", "sleep", ...
  std::vector<std::string> needs;   // stage ids, all defined in the same experiment
  int max_attempts = 3;
  Resources resources;              // the experiment's, overridden per stage
  // The normalised job spec the worker runs: the stage's own settings with
  // defaults filled, plus "kind", "id", "seed", "resources", "model", "data"
  // (the experiment's, overridden per stage). Serialised into Lease.spec_json.
  nlohmann::json job_spec;
};

struct ExperimentSpec {
  std::string name;
  std::string owner;
  int priority = 0;
  Resources resources;
  std::vector<StageSpec> stages;    // in file order; needs refer backwards or forwards
  nlohmann::json normalized;        // the whole document with defaults filled
  std::string normalized_json;      // normalized.dump(), stable key order
  std::string hash;                 // SHA-256 hex of normalized_json
};

struct ParseOptions {
  std::string default_owner;        // used when the file has no `owner`
  // When true, data paths (image folders, .npy inputs) must exist and be
  // readable on this machine. The CLI and worker check; the scheduler may not
  // share a file system with the workers, so it does not.
  bool check_paths = false;
};

// Parses and validates an experiment document.
// Returns InvalidArgument naming the field path on any error.
absl::StatusOr<ExperimentSpec> ParseExperimentYaml(std::string_view yaml,
                                                   const ParseOptions& options);

// Parses one standalone job spec (`topolab-worker run-job --spec FILE`), YAML
// or JSON: a single stage's settings at top level (`kind`, kind-specific keys,
// optional `model`, `data`, `seed`, `inputs`). Returns the normalised job spec
// in the same shape as StageSpec::job_spec.
absl::StatusOr<nlohmann::json> ParseJobSpec(std::string_view text,
                                            const ParseOptions& options);

// The job kinds the validator knows.
std::vector<std::string> KnownJobKinds();

}  // namespace topolab::config

#endif  // TOPOLAB_PROTO_CONFIG_EXPERIMENT_CONFIG_H_
