// gRPC adapters (callback API). Reactor lifetimes: every reactor here
// deletes itself in OnDone(); a streaming reactor unsubscribes from the
// EventHub first, which guarantees no hub callback runs afterwards.
#include "server/service/services.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "proto/grpc_status.h"
#include "proto/status_macros.h"
#include "server/core/experiment_builder.h"
#include "server/service/convert.h"

namespace topolab::server {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// True once nothing in the experiment can change any more.
bool Finished(const ExperimentRecord& e) { return IsTerminal(e.state) && e.finished_at_ms > 0; }

// Remaining time of the call, or `fallback` if the client set no deadline.
int64_t MsUntilDeadline(const grpc::CallbackServerContext* ctx, int64_t fallback) {
  auto deadline = ctx->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return fallback;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::system_clock::now())
                  .count();
  return std::min<int64_t>(fallback, left);
}


// ------------------------------------------------------------------ Watch

class WatchReactor : public grpc::ServerWriteReactor<v1::ExperimentEvent> {
 public:
  WatchReactor(const ServiceDeps& deps, std::string experiment_id)
      : deps_(deps), id_(std::move(experiment_id)) {
    if (id_.empty()) {
      Finish(Invalid("experiment_id: required"));
      return;
    }
    sub_ = deps_.hub->Subscribe(id_, [this](EventHub::Topic t) {
      if (t == EventHub::Topic::kChanged) Kick();
    });
    Kick();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::CANCELLED);
    if (last_sent_) return FinishLocked(grpc::Status::OK);
    if (dirty_) SendLocked();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    if (sub_) deps_.hub->Unsubscribe(sub_);
    delete this;
  }

 private:
  void Kick() {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_) {
      dirty_ = true;
      return;
    }
    SendLocked();
  }
  // Reads a fresh snapshot and writes it. REQUIRES: mu_ held, no write in flight.
  void SendLocked() {
    dirty_ = false;
    if (finished_ || cancelled_) return;
    absl::StatusOr<v1::Experiment> exp = LoadExperiment(*deps_.store, id_);
    if (!exp.ok()) return FinishLocked(ToGrpcStatus(exp.status()));
    ExperimentRecord head;
    head.state = static_cast<ExperimentState>(exp->state());
    head.finished_at_ms = exp->finished_at_ms();
    last_sent_ = Finished(head);
    *event_.mutable_experiment() = std::move(*exp);
    writing_ = true;
    StartWrite(&event_);
  }
  void FinishLocked(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  ServiceDeps deps_;
  std::string id_;
  uint64_t sub_ = 0;
  std::mutex mu_;
  v1::ExperimentEvent event_;
  bool writing_ = false, dirty_ = false, last_sent_ = false, finished_ = false, cancelled_ = false;
};

// ------------------------------------------------------------------ Logs

class LogsReactor : public grpc::ServerWriteReactor<v1::LogLine> {
 public:
  LogsReactor(const ServiceDeps& deps, const v1::StreamLogsRequest& req)
      : deps_(deps), id_(req.experiment_id()), stage_(req.stage_id()), follow_(req.follow()) {
    if (id_.empty()) {
      Finish(Invalid("experiment_id: required"));
      return;
    }
    absl::StatusOr<ExperimentRecord> e = deps_.store->GetExperiment(id_);
    if (!e.ok()) {
      Finish(ToGrpcStatus(e.status()));
      return;
    }
    if (follow_) {
      sub_ = deps_.hub->Subscribe(id_, [this](EventHub::Topic) { Pump(); });
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::CANCELLED);
    PumpLocked();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    if (sub_) deps_.hub->Unsubscribe(sub_);
    delete this;
  }

 private:
  static constexpr int kPage = 500;

  void Pump() {
    std::lock_guard<std::mutex> lock(mu_);
    PumpLocked();
  }
  // REQUIRES: mu_ held.
  void PumpLocked() {
    if (writing_ || finished_ || cancelled_) return;
    if (buffer_.empty() && !Refill()) return;
    if (buffer_.empty()) {
      if (!follow_) return FinishLocked(grpc::Status::OK);
      absl::StatusOr<ExperimentRecord> e = deps_.store->GetExperiment(id_);
      if (!e.ok()) return FinishLocked(ToGrpcStatus(e.status()));
      if (!Finished(*e)) return;  // wait for the hub
      // Finished: lines appended before the end are already stored.
      if (!Refill()) return;
      if (buffer_.empty()) return FinishLocked(grpc::Status::OK);
    }
    ToProto(buffer_.front(), &line_);
    cursor_ = buffer_.front().id;
    buffer_.pop_front();
    writing_ = true;
    StartWrite(&line_);
  }
  // Reads the next page after the cursor. False (and finished) on error.
  bool Refill() {
    absl::StatusOr<std::vector<LogLineRecord>> page =
        deps_.store->ReadLogs(id_, stage_, cursor_, kPage);
    if (!page.ok()) {
      FinishLocked(ToGrpcStatus(page.status()));
      return false;
    }
    buffer_.assign(page->begin(), page->end());
    return true;
  }
  void FinishLocked(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  ServiceDeps deps_;
  std::string id_, stage_;
  bool follow_;
  uint64_t sub_ = 0;
  std::mutex mu_;
  std::deque<LogLineRecord> buffer_;
  int64_t cursor_ = 0;
  v1::LogLine line_;
  bool writing_ = false, finished_ = false, cancelled_ = false;
};

// ------------------------------------------------------------------ Download

class DownloadReactor : public grpc::ServerWriteReactor<v1::ArtifactChunk> {
 public:
  DownloadReactor(const ServiceDeps& deps, const v1::DownloadArtifactRequest& req) : deps_(deps) {
    if (req.experiment_id().empty()) {
      Done(Invalid("experiment_id: required"));
      return;
    }
    if (req.stage_id().empty()) {
      Done(Invalid("stage_id: required"));
      return;
    }
    if (req.name().empty()) {
      Done(Invalid("name: required"));
      return;
    }
    if (req.offset() < 0) {
      Done(Invalid("offset: must be >= 0"));
      return;
    }
    absl::StatusOr<ArtifactRecord> a =
        deps_.store->GetArtifact(req.experiment_id(), req.stage_id(), req.name());
    if (!a.ok()) {
      Done(ToGrpcStatus(a.status()));
      return;
    }
    artifact_ = *a;
    offset_ = req.offset();
    if (offset_ > artifact_.size) {
      Done(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                               "offset: " + std::to_string(offset_) + " is past the end of " +
                                   artifact_.name + " (" + std::to_string(artifact_.size) +
                                   " bytes)"));
      return;
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Done(grpc::Status::CANCELLED);
    if (offset_ >= artifact_.size) return Done(grpc::Status::OK);
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    absl::StatusOr<std::string> data =
        deps_.artifacts->Read(artifact_.sha256, offset_, kDownloadChunkBytes);
    if (!data.ok()) return Done(ToGrpcStatus(data.status()));
    chunk_.set_offset(offset_);
    chunk_.set_total_size(artifact_.size);
    chunk_.set_sha256(artifact_.sha256);
    offset_ += static_cast<int64_t>(data->size());
    if (data->empty()) offset_ = artifact_.size;  // at the end: one empty chunk with the metadata
    chunk_.set_data(std::move(*data));
    StartWrite(&chunk_);
  }
  void Done(const grpc::Status& s) { Finish(s); }

  ServiceDeps deps_;
  ArtifactRecord artifact_;
  int64_t offset_ = 0;
  v1::ArtifactChunk chunk_;
};

// ------------------------------------------------------------------ Upload

class UploadReactor : public grpc::ServerReadReactor<v1::UploadArtifactRequest> {
 public:
  UploadReactor(const ServiceDeps& deps, v1::UploadArtifactResponse* resp)
      : deps_(deps), resp_(resp) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side before the message with last=true: abort
      // (the Writer's destructor deletes the temp file).
      return Done(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               "upload of " + (name_.empty() ? std::string("an artifact") : name_) +
                                   " ended without a final message (last=true)"));
    }
    if (!writer_) return Begin();
    Consume();
  }
  void OnDone() override { delete this; }

 private:
  // First message: validate the name and the lease before accepting data.
  void Begin() {
    job_id_ = req_.job_id();
    token_ = req_.fencing_token();
    name_ = req_.name();
    if (job_id_.empty()) return Done(Invalid("job_id: required"));
    absl::Status valid = ValidateArtifactName(name_);
    if (!valid.ok()) return Done(ToGrpcStatus(valid));
    deps_.loop->Post([this](Scheduler& s) {
      absl::StatusOr<JobRecord> lease = s.CheckLease(job_id_, token_);
      if (!lease.ok()) return Done(ToGrpcStatus(lease.status()));
      absl::StatusOr<std::unique_ptr<ArtifactStore::Writer>> w = deps_.artifacts->NewWriter();
      if (!w.ok()) return Done(ToGrpcStatus(w.status()));
      writer_ = std::move(*w);
      Consume();
    });
  }
  // Appends this message's bytes; commits on the last one.
  void Consume() {
    if (!req_.job_id().empty() && req_.job_id() != job_id_) {
      return Done(Invalid("job_id: changed during the upload"));
    }
    if (!req_.data().empty()) {
      absl::Status s = writer_->Append(req_.data());
      if (!s.ok()) return Done(ToGrpcStatus(s));
    }
    if (!req_.last()) {
      StartRead(&req_);
      return;
    }
    absl::StatusOr<std::string> digest = writer_->Commit(req_.sha256());
    if (!digest.ok()) return Done(ToGrpcStatus(digest.status()));
    const int64_t size = writer_->size();
    std::string sha = *digest;
    deps_.loop->Post([this, size, sha](Scheduler& s) {
      absl::StatusOr<ArtifactRecord> a = s.RecordArtifact(job_id_, token_, name_, size, sha);
      if (!a.ok()) return Done(ToGrpcStatus(a.status()));
      ToProto(*a, resp_->mutable_artifact());
      Done(grpc::Status::OK);
    });
  }
  void Done(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    writer_.reset();  // an uncommitted upload leaves nothing behind
    Finish(s);
  }

  ServiceDeps deps_;
  v1::UploadArtifactResponse* resp_;
  v1::UploadArtifactRequest req_;
  std::string job_id_, name_;
  int64_t token_ = 0;
  std::unique_ptr<ArtifactStore::Writer> writer_;
  bool finished_ = false;
};

}  // namespace

absl::StatusOr<v1::Experiment> LoadExperiment(Store& store, const std::string& experiment_id) {
  ASSIGN_OR_RETURN(ExperimentRecord e, store.GetExperiment(experiment_id));
  ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store.ListJobs(experiment_id));
  v1::Experiment out;
  ToProto(e, jobs, &out);
  return out;
}

// ================================================================== Scheduler

grpc::ServerUnaryReactor* SchedulerServiceImpl::SubmitExperiment(
    grpc::CallbackServerContext* ctx, const v1::SubmitExperimentRequest* req,
    v1::SubmitExperimentResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // Parse on this gRPC thread so submits validate in parallel.
  absl::StatusOr<NewExperiment> exp = BuildExperiment(req->config_yaml(), req->owner());
  if (!exp.ok()) {
    reactor->Finish(ToGrpcStatus(exp.status()));
    return reactor;
  }
  deps_.loop->Submit(std::move(*exp), [reactor, resp](absl::StatusOr<SubmitResult> r) {
    if (r.ok()) {
      resp->set_experiment_id(r->experiment_id);
      for (const std::string& j : r->job_ids) resp->add_job_ids(j);
    }
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerServiceImpl::GetExperiment(grpc::CallbackServerContext* ctx,
                                                              const v1::GetExperimentRequest* req,
                                                              v1::Experiment* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->experiment_id().empty()) {
    reactor->Finish(Invalid("experiment_id: required"));
    return reactor;
  }
  absl::StatusOr<v1::Experiment> e = LoadExperiment(*deps_.store, req->experiment_id());
  if (e.ok()) *resp = std::move(*e);
  reactor->Finish(ToGrpcStatus(e.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerServiceImpl::ListExperiments(
    grpc::CallbackServerContext* ctx, const v1::ListExperimentsRequest* req,
    v1::ListExperimentsResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->page_size() < 0) {
    reactor->Finish(Invalid("page_size: must be >= 0"));
    return reactor;
  }
  ExperimentFilter f;
  f.name = req->name();
  f.owner = req->owner();
  f.state = FromProto(req->state());
  const int page = req->page_size() == 0 ? 50 : std::min(req->page_size(), 1000);
  f.limit = page + 1;  // one more tells whether there is a next page
  if (!req->page_token().empty()) {
    const std::string& t = req->page_token();
    size_t colon = t.find(':');
    int64_t ms = 0;
    if (colon == std::string::npos || colon + 1 >= t.size() ||
        !absl::SimpleAtoi(t.substr(0, colon), &ms)) {
      reactor->Finish(Invalid("page_token: malformed \"" + t + "\""));
      return reactor;
    }
    f.before_created_at_ms = ms;
    f.before_id = t.substr(colon + 1);
  }
  absl::StatusOr<std::vector<ExperimentRecord>> rows = deps_.store->ListExperiments(f);
  if (!rows.ok()) {
    reactor->Finish(ToGrpcStatus(rows.status()));
    return reactor;
  }
  const bool more = static_cast<int>(rows->size()) > page;
  if (more) rows->resize(page);
  for (const ExperimentRecord& e : *rows) {
    absl::StatusOr<std::vector<JobRecord>> jobs = deps_.store->ListJobs(e.id);
    if (!jobs.ok()) {
      reactor->Finish(ToGrpcStatus(jobs.status()));
      return reactor;
    }
    ToProto(e, *jobs, resp->add_experiments());
  }
  if (more && !rows->empty()) {
    resp->set_next_page_token(std::to_string(rows->back().created_at_ms) + ":" + rows->back().id);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerServiceImpl::CancelExperiment(
    grpc::CallbackServerContext* ctx, const v1::CancelExperimentRequest* req,
    v1::CancelExperimentResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->experiment_id().empty()) {
    reactor->Finish(Invalid("experiment_id: required"));
    return reactor;
  }
  std::string id = req->experiment_id();
  Store* store = deps_.store;
  deps_.loop->Post([reactor, resp, id, store](Scheduler& s) {
    absl::StatusOr<ExperimentRecord> r = s.CancelExperiment(id);
    if (!r.ok()) return reactor->Finish(ToGrpcStatus(r.status()));
    absl::StatusOr<v1::Experiment> e = LoadExperiment(*store, id);
    if (e.ok()) *resp->mutable_experiment() = std::move(*e);
    reactor->Finish(ToGrpcStatus(e.status()));
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::ExperimentEvent>* SchedulerServiceImpl::WatchExperiment(
    grpc::CallbackServerContext*, const v1::WatchExperimentRequest* req) {
  return new WatchReactor(deps_, req->experiment_id());
}

grpc::ServerWriteReactor<v1::LogLine>* SchedulerServiceImpl::StreamLogs(
    grpc::CallbackServerContext*, const v1::StreamLogsRequest* req) {
  return new LogsReactor(deps_, *req);
}

grpc::ServerUnaryReactor* SchedulerServiceImpl::ListArtifacts(
    grpc::CallbackServerContext* ctx, const v1::ListArtifactsRequest* req,
    v1::ListArtifactsResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->experiment_id().empty()) {
    reactor->Finish(Invalid("experiment_id: required"));
    return reactor;
  }
  absl::Status exists = deps_.store->GetExperiment(req->experiment_id()).status();
  if (!exists.ok()) {
    reactor->Finish(ToGrpcStatus(exists));
    return reactor;
  }
  absl::StatusOr<std::vector<ArtifactRecord>> rows =
      deps_.store->ListArtifacts(req->experiment_id(), req->stage_id());
  if (rows.ok()) {
    for (const ArtifactRecord& a : *rows) ToProto(a, resp->add_artifacts());
  }
  reactor->Finish(ToGrpcStatus(rows.status()));
  return reactor;
}

grpc::ServerWriteReactor<v1::ArtifactChunk>* SchedulerServiceImpl::DownloadArtifact(
    grpc::CallbackServerContext*, const v1::DownloadArtifactRequest* req) {
  return new DownloadReactor(deps_, *req);
}

grpc::ServerUnaryReactor* SchedulerServiceImpl::ListWorkers(grpc::CallbackServerContext* ctx,
                                                            const v1::ListWorkersRequest*,
                                                            v1::ListWorkersResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  deps_.loop->Post([reactor, resp](Scheduler& s) {
    for (const WorkerView& w : s.ListWorkers()) ToProto(w, resp->add_workers());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

// ================================================================== Worker

grpc::ServerUnaryReactor* WorkerServiceImpl::RegisterWorker(grpc::CallbackServerContext* ctx,
                                                            const v1::RegisterWorkerRequest* req,
                                                            v1::RegisterWorkerResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  WorkerRecord w = FromProto(*req);
  const SchedulerOptions opts = deps_.options;
  deps_.loop->Post([reactor, resp, w, opts](Scheduler& s) {
    absl::StatusOr<WorkerRecord> r = s.RegisterWorker(w);
    if (r.ok()) {
      resp->set_worker_id(r->id);
      resp->set_heartbeat_interval_ms(static_cast<int32_t>(opts.heartbeat_interval_ms));
      resp->set_lease_ttl_ms(static_cast<int32_t>(opts.lease_ttl_ms));
    }
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::LeaseJob(grpc::CallbackServerContext* ctx,
                                                      const v1::LeaseJobRequest* req,
                                                      v1::LeaseJobResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->worker_id().empty()) {
    reactor->Finish(Invalid("worker_id: required"));
    return reactor;
  }
  // Answer a little before the client's own deadline so the answer arrives.
  int64_t wait_ms = MsUntilDeadline(ctx, req->wait_ms());
  if (wait_ms < req->wait_ms()) wait_ms -= 50;
  deps_.loop->LeaseJob(
      req->worker_id(), std::max<int64_t>(wait_ms, 0),
      [reactor, resp](absl::StatusOr<std::optional<LeaseGrant>> r) {
        if (r.ok() && r->has_value()) {
          ToProto(**r, resp->mutable_lease());
        }
        reactor->Finish(ToGrpcStatus(r.status()));
      },
      [ctx] { return ctx->IsCancelled(); });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* req,
                                                       v1::HeartbeatResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  HeartbeatReport h;
  h.worker_id = req->worker_id();
  h.job_id = req->job_id();
  h.fencing_token = req->fencing_token();
  h.progress = req->progress();
  h.step = req->step();
  h.metrics.insert(req->metrics().begin(), req->metrics().end());
  deps_.loop->Post([reactor, resp, h = std::move(h)](Scheduler& s) {
    absl::StatusOr<bool> r = s.Heartbeat(h);
    if (r.ok()) resp->set_cancel(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::AppendLogs(grpc::CallbackServerContext* ctx,
                                                        const v1::AppendLogsRequest* req,
                                                        v1::AppendLogsResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::vector<std::string> lines(req->lines().begin(), req->lines().end());
  std::string job_id = req->job_id();
  int64_t token = req->fencing_token();
  deps_.loop->Post([reactor, job_id, token, lines = std::move(lines)](Scheduler& s) {
    reactor->Finish(ToGrpcStatus(s.AppendLogs(job_id, token, lines).status()));
  });
  return reactor;
}

grpc::ServerReadReactor<v1::UploadArtifactRequest>* WorkerServiceImpl::UploadArtifact(
    grpc::CallbackServerContext*, v1::UploadArtifactResponse* resp) {
  return new UploadReactor(deps_, resp);
}

grpc::ServerUnaryReactor* WorkerServiceImpl::CompleteJob(grpc::CallbackServerContext* ctx,
                                                         const v1::CompleteJobRequest* req,
                                                         v1::CompleteJobResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  CompletionReport c;
  c.job_id = req->job_id();
  c.fencing_token = req->fencing_token();
  c.succeeded = req->succeeded();
  c.message = req->message();
  c.metrics.insert(req->metrics().begin(), req->metrics().end());
  deps_.loop->Post([reactor, c = std::move(c)](Scheduler& s) {
    reactor->Finish(ToGrpcStatus(s.CompleteJob(c)));
  });
  return reactor;
}

}  // namespace topolab::server
