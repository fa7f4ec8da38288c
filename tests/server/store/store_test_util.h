// Helpers for the store tests: record builders and a field-by-field text
// form of every record, so EXPECT_EQ on two records prints what differs.
#ifndef TOPOLAB_TESTS_SERVER_STORE_STORE_TEST_UTIL_H_
#define TOPOLAB_TESTS_SERVER_STORE_STORE_TEST_UTIL_H_

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "server/store/store.h"

namespace topolab::server::testing {

inline std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

inline std::string Describe(const ExperimentRecord& x) {
  std::ostringstream o;
  o << "id=" << x.id << " name=" << x.name << " owner=" << x.owner << " priority=" << x.priority
    << " state=" << ExperimentStateName(x.state) << " yaml=[" << x.config_yaml << "] json=["
    << x.config_json << "] hash=" << x.config_hash << " created=" << x.created_at_ms
    << " finished=" << x.finished_at_ms;
  return o.str();
}

inline std::string Describe(const JobRecord& j) {
  std::ostringstream o;
  o << "id=" << j.id << " exp=" << j.experiment_id << " stage=" << j.stage_id << " kind=" << j.kind
    << " state=" << JobStateName(j.state) << " priority=" << j.priority << " owner=" << j.owner
    << " device=" << j.resources.device << " gpus=" << j.resources.gpus
    << " gpu_mem=" << Num(j.resources.gpu_memory_gb) << " needs=[";
  for (const std::string& n : j.needs) o << n << ",";
  o << "] spec=[" << j.spec_json << "] attempt=" << j.attempt << " max=" << j.max_attempts
    << " token=" << j.fencing_token << " worker=" << j.worker_id << " lease=" << j.lease_expires_at_ms
    << " progress=" << Num(j.progress) << " message=[" << j.message << "] metrics={";
  for (const auto& [k, v] : j.metrics) o << k << ":" << Num(v) << ",";
  o << "} mstep=" << j.metrics_step << " created=" << j.created_at_ms << " queued=" << j.queued_at_ms
    << " started=" << j.started_at_ms << " finished=" << j.finished_at_ms;
  return o.str();
}

inline std::string Describe(const WorkerRecord& w) {
  std::ostringstream o;
  o << "id=" << w.id << " host=" << w.host << " devices=[";
  for (const DeviceRecord& d : w.devices) o << d.type << "/" << d.name << "/" << d.memory_bytes << ",";
  o << "] kinds=[";
  for (const std::string& k : w.job_kinds) o << k << ",";
  o << "] max=" << w.max_concurrent_jobs << " registered=" << w.registered_at_ms
    << " seen=" << w.last_seen_ms << " alive=" << w.alive;
  return o.str();
}

inline std::string Describe(const LogLineRecord& l) {
  std::ostringstream o;
  o << "id=" << l.id << " job=" << l.job_id << " stage=" << l.stage_id << " seq=" << l.seq
    << " ts=" << l.ts_ms << " text=[" << l.text << "]";
  return o.str();
}

inline std::string Describe(const ArtifactRecord& a) {
  std::ostringstream o;
  o << "exp=" << a.experiment_id << " job=" << a.job_id << " stage=" << a.stage_id << " name=" << a.name
    << " size=" << a.size << " sha=" << a.sha256 << " created=" << a.created_at_ms;
  return o.str();
}

inline std::string Describe(const MetricPoint& m) {
  std::ostringstream o;
  o << "job=" << m.job_id << " step=" << m.step << " name=" << m.name << " value=" << Num(m.value)
    << " ts=" << m.ts_ms;
  return o.str();
}

template <typename T>
std::vector<std::string> DescribeAll(const std::vector<T>& v) {
  std::vector<std::string> out;
  for (const T& x : v) out.push_back(Describe(x));
  return out;
}

// An experiment "e<n>" with `jobs` stages s0 -> s1 -> ... (each needs the one before).
inline NewExperiment MakeExperiment(const std::string& id, int64_t created_at_ms, int jobs = 2,
                                    const std::string& name = "exp", const std::string& owner = "alice") {
  NewExperiment e;
  e.experiment.id = id;
  e.experiment.name = name;
  e.experiment.owner = owner;
  e.experiment.priority = 3;
  e.experiment.state = ExperimentState::kQueued;
  e.experiment.config_yaml = "name: " + name + "\nstages: []\n";
  e.experiment.config_json = "{\"name\":\"" + name + "\"}";
  e.experiment.config_hash = std::string(64, 'a');
  e.experiment.created_at_ms = created_at_ms;
  for (int i = 0; i < jobs; ++i) {
    JobRecord j;
    j.id = id + "-j" + std::to_string(i);
    j.experiment_id = id;
    j.stage_id = "s" + std::to_string(i);
    j.kind = "train";
    j.state = i == 0 ? JobState::kQueued : JobState::kBlocked;
    j.priority = 3;
    j.owner = owner;
    j.resources.device = "cpu";
    if (i > 0) j.needs = {"s" + std::to_string(i - 1)};
    j.spec_json = "{\"kind\":\"train\",\"i\":" + std::to_string(i) + "}";
    j.max_attempts = 3;
    j.created_at_ms = created_at_ms;
    j.queued_at_ms = i == 0 ? created_at_ms : 0;
    e.jobs.push_back(j);
  }
  return e;
}

}  // namespace topolab::server::testing

#endif  // TOPOLAB_TESTS_SERVER_STORE_STORE_TEST_UTIL_H_
