// The two gRPC services of proto/topolab.proto as thin callback-API
// adapters: each method converts the request, makes one call into the core
// (posted onto the CoreLoop) or one read of the thread-safe Store/
// ArtifactStore, converts the result and finishes with ToGrpcStatus().
//
// Streams (WatchExperiment, StreamLogs with follow) subscribe to the
// EventHub and re-read the store only when told something changed.
// Uploads stream bytes straight into an ArtifactStore::Writer on the gRPC
// thread; only the lease check and the final row go through the core.
#ifndef TOPOLAB_SERVER_SERVICE_SERVICES_H_
#define TOPOLAB_SERVER_SERVICE_SERVICES_H_

#include <memory>

#include "server/core/core_loop.h"
#include "server/core/event_hub.h"
#include "server/core/scheduler.h"
#include "server/store/artifact_store.h"
#include "server/store/store.h"
#include "topolab.grpc.pb.h"

namespace spdlog {
class logger;
}

namespace topolab::server {

// What the adapters need; everything must outlive the services.
struct ServiceDeps {
  Store* store = nullptr;
  ArtifactStore* artifacts = nullptr;
  CoreLoop* loop = nullptr;
  EventHub* hub = nullptr;
  SchedulerOptions options;               // heartbeat interval / lease TTL for workers
  std::shared_ptr<spdlog::logger> log;    // may be null
};

// Largest chunk DownloadArtifact sends.
inline constexpr int64_t kDownloadChunkBytes = 1 << 20;

class SchedulerServiceImpl final : public v1::Scheduler::CallbackService {
 public:
  explicit SchedulerServiceImpl(ServiceDeps deps) : deps_(std::move(deps)) {}

  grpc::ServerUnaryReactor* SubmitExperiment(grpc::CallbackServerContext* ctx,
                                             const v1::SubmitExperimentRequest* req,
                                             v1::SubmitExperimentResponse* resp) override;
  grpc::ServerUnaryReactor* GetExperiment(grpc::CallbackServerContext* ctx,
                                          const v1::GetExperimentRequest* req,
                                          v1::Experiment* resp) override;
  grpc::ServerUnaryReactor* ListExperiments(grpc::CallbackServerContext* ctx,
                                            const v1::ListExperimentsRequest* req,
                                            v1::ListExperimentsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelExperiment(grpc::CallbackServerContext* ctx,
                                             const v1::CancelExperimentRequest* req,
                                             v1::CancelExperimentResponse* resp) override;
  grpc::ServerWriteReactor<v1::ExperimentEvent>* WatchExperiment(
      grpc::CallbackServerContext* ctx, const v1::WatchExperimentRequest* req) override;
  grpc::ServerWriteReactor<v1::LogLine>* StreamLogs(grpc::CallbackServerContext* ctx,
                                                    const v1::StreamLogsRequest* req) override;
  grpc::ServerUnaryReactor* ListArtifacts(grpc::CallbackServerContext* ctx,
                                          const v1::ListArtifactsRequest* req,
                                          v1::ListArtifactsResponse* resp) override;
  grpc::ServerWriteReactor<v1::ArtifactChunk>* DownloadArtifact(
      grpc::CallbackServerContext* ctx, const v1::DownloadArtifactRequest* req) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* req,
                                        v1::ListWorkersResponse* resp) override;

 private:
  ServiceDeps deps_;
};

class WorkerServiceImpl final : public v1::Worker::CallbackService {
 public:
  explicit WorkerServiceImpl(ServiceDeps deps) : deps_(std::move(deps)) {}

  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* ctx,
                                           const v1::RegisterWorkerRequest* req,
                                           v1::RegisterWorkerResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseJob(grpc::CallbackServerContext* ctx,
                                     const v1::LeaseJobRequest* req,
                                     v1::LeaseJobResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* AppendLogs(grpc::CallbackServerContext* ctx,
                                       const v1::AppendLogsRequest* req,
                                       v1::AppendLogsResponse* resp) override;
  grpc::ServerReadReactor<v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* ctx, v1::UploadArtifactResponse* resp) override;
  grpc::ServerUnaryReactor* CompleteJob(grpc::CallbackServerContext* ctx,
                                        const v1::CompleteJobRequest* req,
                                        v1::CompleteJobResponse* resp) override;

 private:
  ServiceDeps deps_;
};

// Loads an experiment with its jobs from the store (NotFound if absent).
absl::StatusOr<v1::Experiment> LoadExperiment(Store& store, const std::string& experiment_id);

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_SERVICE_SERVICES_H_
