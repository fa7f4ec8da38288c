// gRPC calls of the `topolab` CLI.
#include "client/commands.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "proto/grpc_status.h"
#include "proto/sha256.h"

namespace topolab::client {
namespace {

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return static_cast<int64_t>(st.st_size);
}

absl::Status IoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

SchedulerClient::SchedulerClient(const ClientOptions& options)
    : SchedulerClient(options, grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials())) {}

SchedulerClient::SchedulerClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options), channel_(std::move(channel)), stub_(v1::Scheduler::NewStub(channel_)) {}

void SchedulerClient::Prepare(grpc::ClientContext* ctx, bool unary) const {
  if (unary && options_.rpc_timeout_ms > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.rpc_timeout_ms));
  }
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
}

absl::StatusOr<v1::SubmitExperimentResponse> SchedulerClient::Submit(const std::string& config_yaml,
                                                                     const std::string& owner) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::SubmitExperimentRequest req;
  req.set_config_yaml(config_yaml);
  req.set_owner(owner);
  v1::SubmitExperimentResponse resp;
  absl::Status s = FromGrpcStatus(stub_->SubmitExperiment(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<v1::Experiment> SchedulerClient::GetExperiment(const std::string& id) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::GetExperimentRequest req;
  req.set_experiment_id(id);
  v1::Experiment resp;
  absl::Status s = FromGrpcStatus(stub_->GetExperiment(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::vector<v1::Experiment>> SchedulerClient::ListExperiments(const v1::ListExperimentsRequest& filter,
                                                                             int limit) {
  std::vector<v1::Experiment> out;
  v1::ListExperimentsRequest req = filter;
  req.clear_page_token();
  while (static_cast<int>(out.size()) < limit) {
    req.set_page_size(std::min(limit - static_cast<int>(out.size()), 1000));
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    v1::ListExperimentsResponse resp;
    absl::Status s = FromGrpcStatus(stub_->ListExperiments(&ctx, req, &resp));
    if (!s.ok()) return s;
    for (auto& e : *resp.mutable_experiments()) {
      if (static_cast<int>(out.size()) >= limit) break;
      out.push_back(std::move(e));
    }
    if (resp.next_page_token().empty() || resp.experiments_size() == 0) break;
    req.set_page_token(resp.next_page_token());
  }
  return out;
}

absl::StatusOr<v1::Experiment> SchedulerClient::CancelExperiment(const std::string& id) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::CancelExperimentRequest req;
  req.set_experiment_id(id);
  v1::CancelExperimentResponse resp;
  absl::Status s = FromGrpcStatus(stub_->CancelExperiment(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp.experiment();
}

absl::StatusOr<v1::Experiment> SchedulerClient::Watch(const std::string& id,
                                                      const std::function<void(const v1::Experiment&)>& on_event) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::WatchExperimentRequest req;
  req.set_experiment_id(id);
  auto reader = stub_->WatchExperiment(&ctx, req);
  v1::ExperimentEvent ev;
  v1::Experiment last;
  bool any = false;
  while (reader->Read(&ev)) {
    last = ev.experiment();
    any = true;
    on_event(last);
  }
  absl::Status s = FromGrpcStatus(reader->Finish());
  if (!s.ok()) return s;
  if (!any) return absl::FailedPreconditionError(absl::StrCat("watch of ", id, " ended without any update"));
  return last;
}

absl::Status SchedulerClient::StreamLogs(const std::string& id, const std::string& stage, bool follow,
                                         const std::function<void(const v1::LogLine&)>& on_line) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::StreamLogsRequest req;
  req.set_experiment_id(id);
  req.set_stage_id(stage);
  req.set_follow(follow);
  auto reader = stub_->StreamLogs(&ctx, req);
  v1::LogLine line;
  while (reader->Read(&line)) on_line(line);
  return FromGrpcStatus(reader->Finish());
}

absl::StatusOr<std::vector<v1::Artifact>> SchedulerClient::ListArtifacts(const std::string& id,
                                                                         const std::string& stage) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::ListArtifactsRequest req;
  req.set_experiment_id(id);
  req.set_stage_id(stage);
  v1::ListArtifactsResponse resp;
  absl::Status s = FromGrpcStatus(stub_->ListArtifacts(&ctx, req, &resp));
  if (!s.ok()) return s;
  return std::vector<v1::Artifact>(resp.artifacts().begin(), resp.artifacts().end());
}

absl::StatusOr<std::vector<v1::WorkerInfo>> SchedulerClient::ListWorkers() {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::ListWorkersResponse resp;
  absl::Status s = FromGrpcStatus(stub_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp));
  if (!s.ok()) return s;
  return std::vector<v1::WorkerInfo>(resp.workers().begin(), resp.workers().end());
}

absl::StatusOr<PullResult> SchedulerClient::PullArtifact(const v1::Artifact& a, const std::string& path) {
  PullResult result;
  result.path = path;
  const std::string label = absl::StrCat(a.stage_id(), "/", a.name());
  // Already complete?
  if (FileSize(path) == a.size()) {
    auto digest = Sha256File(path);
    if (digest.ok() && *digest == a.sha256()) {
      result.outcome = PullResult::kUpToDate;
      return result;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create directory for ", path, ": ", ec.message()));

  const std::string part = path + ".part";
  int64_t offset = FileSize(part);
  if (offset < 0 || offset > a.size()) offset = 0;
  std::FILE* f = std::fopen(part.c_str(), offset > 0 ? "ab" : "wb");
  if (f == nullptr) return IoError("cannot write", part);
  result.outcome = offset > 0 ? PullResult::kResumed : PullResult::kDownloaded;

  absl::Status stream_status;
  std::string server_sha;
  if (offset < a.size() || a.size() == 0) {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::DownloadArtifactRequest req;
    req.set_experiment_id(a.experiment_id());
    req.set_stage_id(a.stage_id());
    req.set_name(a.name());
    req.set_offset(offset);
    auto reader = stub_->DownloadArtifact(&ctx, req);
    v1::ArtifactChunk chunk;
    int64_t pos = offset;
    while (reader->Read(&chunk)) {
      if (!chunk.sha256().empty()) server_sha = chunk.sha256();
      if (chunk.data().empty()) continue;
      if (chunk.offset() != pos) {
        stream_status = absl::DataLossError(
            absl::StrCat(label, ": chunk at offset ", chunk.offset(), ", expected ", pos));
        ctx.TryCancel();
        break;
      }
      if (std::fwrite(chunk.data().data(), 1, chunk.data().size(), f) != chunk.data().size()) {
        stream_status = IoError("cannot write", part);
        ctx.TryCancel();
        break;
      }
      pos += static_cast<int64_t>(chunk.data().size());
      result.bytes_received += static_cast<int64_t>(chunk.data().size());
    }
    absl::Status fin = FromGrpcStatus(reader->Finish());
    if (stream_status.ok()) stream_status = fin;
  }
  if (std::fclose(f) != 0 && stream_status.ok()) stream_status = IoError("cannot write", part);
  // A partial file is kept on stream errors so the next pull resumes it.
  if (!stream_status.ok()) return stream_status;

  const std::string expected = a.sha256().empty() ? server_sha : a.sha256();
  const int64_t got_size = FileSize(part);
  auto digest = Sha256File(part);
  if (!digest.ok()) return digest.status();
  if (got_size != a.size() || *digest != expected) {
    std::remove(part.c_str());
    if (got_size != a.size()) {
      return absl::DataLossError(
          absl::StrCat(label, ": size mismatch: expected ", a.size(), " bytes, got ", got_size));
    }
    return absl::DataLossError(absl::StrCat(label, ": sha256 mismatch: expected ", expected, " got ", *digest));
  }
  if (std::rename(part.c_str(), path.c_str()) != 0) return IoError("cannot rename to", path);
  return result;
}

}  // namespace topolab::client
