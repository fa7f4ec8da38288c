// Conversions between topolab.proto messages and the store's domain
// structs. The only place where both kinds of type meet.
#ifndef TOPOLAB_SERVER_SERVICE_CONVERT_H_
#define TOPOLAB_SERVER_SERVICE_CONVERT_H_

#include <vector>

#include "server/core/scheduler.h"
#include "server/store/store.h"
#include "topolab.pb.h"

namespace topolab::server {

v1::JobState ToProto(JobState s);
v1::ExperimentState ToProto(ExperimentState s);
// UNSPECIFIED -> nullopt.
std::optional<ExperimentState> FromProto(v1::ExperimentState s);

void ToProto(const JobRecord& in, v1::Job* out);
void ToProto(const ExperimentRecord& in, const std::vector<JobRecord>& jobs, v1::Experiment* out);
void ToProto(const ArtifactRecord& in, v1::Artifact* out);
void ToProto(const ArtifactRecord& in, v1::InputArtifact* out);
void ToProto(const WorkerView& in, v1::WorkerInfo* out);
void ToProto(const LogLineRecord& in, v1::LogLine* out);
void ToProto(const LeaseGrant& in, v1::Lease* out);

WorkerRecord FromProto(const v1::RegisterWorkerRequest& in);

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_SERVICE_CONVERT_H_
