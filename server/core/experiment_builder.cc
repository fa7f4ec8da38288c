// ExperimentSpec (proto/config) -> NewExperiment (store rows).
#include "server/core/experiment_builder.h"

#include <utility>

#include "proto/config/experiment_config.h"
#include "proto/status_macros.h"

namespace topolab::server {

absl::StatusOr<NewExperiment> BuildExperiment(std::string_view yaml,
                                              const std::string& default_owner) {
  config::ParseOptions options;
  options.default_owner = default_owner.empty() ? "anonymous" : default_owner;
  options.check_paths = false;
  ASSIGN_OR_RETURN(config::ExperimentSpec spec, config::ParseExperimentYaml(yaml, options));
  NewExperiment out;
  ExperimentRecord& e = out.experiment;
  e.name = spec.name;
  e.owner = spec.owner.empty() ? options.default_owner : spec.owner;
  e.priority = spec.priority;
  e.config_yaml = std::string(yaml);
  e.config_json = spec.normalized_json;
  e.config_hash = spec.hash;
  out.jobs.reserve(spec.stages.size());
  for (config::StageSpec& s : spec.stages) {
    JobRecord j;
    j.stage_id = s.id;
    j.kind = s.kind;
    j.needs = s.needs;
    j.max_attempts = s.max_attempts;
    j.resources.device = s.resources.device;
    j.resources.gpus = s.resources.gpus;
    j.resources.gpu_memory_gb = s.resources.gpu_memory_gb;
    j.spec_json = s.job_spec.dump();
    j.priority = e.priority;
    j.owner = e.owner;
    out.jobs.push_back(std::move(j));
  }
  return out;
}

}  // namespace topolab::server
