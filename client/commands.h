// The `topolab` CLI's calls to the scheduler: one method per RPC, returning
// absl::Status (converted from grpc::Status with FromGrpcStatus), plus
// PullArtifact, which downloads one artifact to disk with resume and SHA-256
// verification. Printing lives in client/format.h and client/main.cc.
//
// Thread-compatible: one SchedulerClient per thread.
#ifndef TOPOLAB_CLIENT_COMMANDS_H_
#define TOPOLAB_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "topolab.grpc.pb.h"

namespace topolab::client {

struct ClientOptions {
  std::string address = "127.0.0.1:7070";
  // Sent as "authorization: Bearer <token>" when not empty (env TOPOLAB_TOKEN).
  std::string token;
  // Deadline of unary calls. Streams (watch, logs -f, downloads) have none.
  int64_t rpc_timeout_ms = 30000;
};

struct PullResult {
  enum Outcome { kDownloaded, kResumed, kUpToDate };
  Outcome outcome = kDownloaded;
  int64_t bytes_received = 0;   // over the network in this call
  std::string path;             // final local path
};

class SchedulerClient {
 public:
  explicit SchedulerClient(const ClientOptions& options);
  // For tests: any channel (e.g. an in-process server's).
  SchedulerClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel);

  const std::string& address() const { return options_.address; }

  absl::StatusOr<v1::SubmitExperimentResponse> Submit(const std::string& config_yaml, const std::string& owner);
  // Returns NotFound if the experiment does not exist.
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& id);
  // Pages through ListExperiments until `limit` experiments (newest first)
  // or the end. `filter`'s page fields are ignored.
  absl::StatusOr<std::vector<v1::Experiment>> ListExperiments(const v1::ListExperimentsRequest& filter, int limit);
  absl::StatusOr<v1::Experiment> CancelExperiment(const std::string& id);
  // Calls `on_event` with every snapshot until the server ends the stream
  // (after a terminal snapshot). Returns the last snapshot, or the stream's
  // error. FailedPrecondition if the stream ended without any snapshot.
  absl::StatusOr<v1::Experiment> Watch(const std::string& id,
                                       const std::function<void(const v1::Experiment&)>& on_event);
  // Streams log lines (of one stage when `stage` is not empty) to `on_line`.
  absl::Status StreamLogs(const std::string& id, const std::string& stage, bool follow,
                          const std::function<void(const v1::LogLine&)>& on_line);
  absl::StatusOr<std::vector<v1::Artifact>> ListArtifacts(const std::string& id, const std::string& stage);
  absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers();

  // Downloads `artifact` to `path`. Bytes go to `path + ".part"` first; an
  // existing partial file is resumed from its size; the file is renamed to
  // `path` only after its SHA-256 equals the artifact's. A complete `path`
  // with the right digest is left alone (kUpToDate). Returns DataLoss on a
  // digest or size mismatch (the partial file is deleted), Internal on local
  // I/O errors (with the path).
  // REQUIRES: `path` was produced by SafeArtifactPath.
  absl::StatusOr<PullResult> PullArtifact(const v1::Artifact& artifact, const std::string& path);

 private:
  void Prepare(grpc::ClientContext* ctx, bool unary) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
};

}  // namespace topolab::client

#endif  // TOPOLAB_CLIENT_COMMANDS_H_
