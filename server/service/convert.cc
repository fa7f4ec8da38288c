// proto <-> domain conversions (field by field; no policy here).
#include "server/service/convert.h"

namespace topolab::server {

v1::JobState ToProto(JobState s) { return static_cast<v1::JobState>(static_cast<int>(s)); }

v1::ExperimentState ToProto(ExperimentState s) {
  return static_cast<v1::ExperimentState>(static_cast<int>(s));
}

std::optional<ExperimentState> FromProto(v1::ExperimentState s) {
  if (s == v1::EXPERIMENT_STATE_UNSPECIFIED) return std::nullopt;
  return static_cast<ExperimentState>(static_cast<int>(s));
}

void ToProto(const JobRecord& in, v1::Job* out) {
  out->set_id(in.id);
  out->set_experiment_id(in.experiment_id);
  out->set_stage_id(in.stage_id);
  out->set_kind(in.kind);
  out->set_state(ToProto(in.state));
  out->set_attempt(in.attempt);
  out->set_max_attempts(in.max_attempts);
  for (const std::string& n : in.needs) out->add_needs(n);
  out->set_progress(in.progress);
  out->set_message(in.message);
  out->set_spec_json(in.spec_json);
  out->set_worker_id(in.worker_id);
  out->set_created_at_ms(in.created_at_ms);
  out->set_started_at_ms(in.started_at_ms);
  out->set_finished_at_ms(in.finished_at_ms);
  for (const auto& [k, v] : in.metrics) (*out->mutable_metrics())[k] = v;
  out->set_metrics_step(in.metrics_step);
  v1::Resources* r = out->mutable_resources();
  r->set_device(in.resources.device);
  r->set_gpus(in.resources.gpus);
  r->set_gpu_memory_gb(in.resources.gpu_memory_gb);
}

void ToProto(const ExperimentRecord& in, const std::vector<JobRecord>& jobs, v1::Experiment* out) {
  out->set_id(in.id);
  out->set_name(in.name);
  out->set_owner(in.owner);
  out->set_priority(in.priority);
  out->set_state(ToProto(in.state));
  out->set_config_yaml(in.config_yaml);
  out->set_config_json(in.config_json);
  out->set_config_hash(in.config_hash);
  out->set_created_at_ms(in.created_at_ms);
  out->set_finished_at_ms(in.finished_at_ms);
  for (const JobRecord& j : jobs) ToProto(j, out->add_jobs());
}

void ToProto(const ArtifactRecord& in, v1::Artifact* out) {
  out->set_experiment_id(in.experiment_id);
  out->set_job_id(in.job_id);
  out->set_stage_id(in.stage_id);
  out->set_name(in.name);
  out->set_size(in.size);
  out->set_sha256(in.sha256);
  out->set_created_at_ms(in.created_at_ms);
}

void ToProto(const ArtifactRecord& in, v1::InputArtifact* out) {
  out->set_stage_id(in.stage_id);
  out->set_name(in.name);
  out->set_size(in.size);
  out->set_sha256(in.sha256);
}

void ToProto(const WorkerView& in, v1::WorkerInfo* out) {
  const WorkerRecord& w = in.record;
  out->set_id(w.id);
  out->set_host(w.host);
  for (const DeviceRecord& d : w.devices) {
    v1::Device* p = out->add_devices();
    p->set_type(d.type);
    p->set_name(d.name);
    p->set_memory_bytes(d.memory_bytes);
  }
  for (const std::string& k : w.job_kinds) out->add_job_kinds(k);
  out->set_max_concurrent_jobs(w.max_concurrent_jobs);
  out->set_registered_at_ms(w.registered_at_ms);
  out->set_last_seen_ms(w.last_seen_ms);
  out->set_alive(w.alive);
  for (const std::string& j : in.running_job_ids) out->add_running_job_ids(j);
}

void ToProto(const LogLineRecord& in, v1::LogLine* out) {
  out->set_job_id(in.job_id);
  out->set_stage_id(in.stage_id);
  out->set_seq(in.seq);
  out->set_ts_ms(in.ts_ms);
  out->set_text(in.text);
}

void ToProto(const LeaseGrant& in, v1::Lease* out) {
  const JobRecord& j = in.job;
  out->set_job_id(j.id);
  out->set_experiment_id(j.experiment_id);
  out->set_stage_id(j.stage_id);
  out->set_kind(j.kind);
  out->set_attempt(j.attempt);
  out->set_fencing_token(j.fencing_token);
  out->set_spec_json(j.spec_json);
  out->set_lease_ttl_ms(static_cast<int32_t>(in.lease_ttl_ms));
  for (const ArtifactRecord& a : in.inputs) ToProto(a, out->add_inputs());
  for (const ArtifactRecord& a : in.own_artifacts) ToProto(a, out->add_own_artifacts());
}

WorkerRecord FromProto(const v1::RegisterWorkerRequest& in) {
  WorkerRecord w;
  w.id = in.worker_id();
  w.host = in.host();
  for (const v1::Device& d : in.devices()) {
    w.devices.push_back(DeviceRecord{d.type(), d.name(), d.memory_bytes()});
  }
  w.job_kinds.assign(in.job_kinds().begin(), in.job_kinds().end());
  w.max_concurrent_jobs = in.max_concurrent_jobs();
  return w;
}

}  // namespace topolab::server
