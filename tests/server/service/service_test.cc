// Service tests: a real SchedulerServer (SQLite in a temp dir) on
// 127.0.0.1:0, driven through generated stubs. Each RPC is exercised at least
// once, including download resume, upload digest mismatch and fencing.
#include "server/service/server.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include "proto/sha256.h"
#include "tests/test_util.h"
#include "topolab.grpc.pb.h"

namespace topolab::server {
namespace {

namespace fs = std::filesystem;

const char* kTwoStages = R"(name: svc-test
owner: alice
stages:
  - id: first
    kind: sleep
    seconds: 0
  - id: second
    kind: sleep
    seconds: 0
    needs: [first]
)";

const char* kOneStage = R"(name: single
stages:
  - id: only
    kind: sleep
    seconds: 0
)";

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("topolab_service_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.string();
    config.scheduler.lease_ttl_ms = 60'000;
    config.scheduler.heartbeat_interval_ms = 1'000;
    absl::StatusOr<std::unique_ptr<SchedulerServer>> s = SchedulerServer::Start(config, nullptr);
    ASSERT_OK(s);
    server_ = std::move(*s);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    client_ = v1::Scheduler::NewStub(channel_);
    worker_ = v1::Worker::NewStub(channel_);
  }
  void TearDown() override {
    client_.reset();
    worker_.reset();
    channel_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
    fs::remove_all(dir_);
  }

  v1::SubmitExperimentResponse Submit(const std::string& yaml) {
    grpc::ClientContext ctx;
    v1::SubmitExperimentRequest req;
    req.set_config_yaml(yaml);
    req.set_owner("tester");
    v1::SubmitExperimentResponse resp;
    grpc::Status s = client_->SubmitExperiment(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::string Register() {
    grpc::ClientContext ctx;
    v1::RegisterWorkerRequest req;
    req.set_host("test-host");
    req.add_job_kinds("sleep");
    req.set_max_concurrent_jobs(2);
    v1::Device* d = req.add_devices();
    d->set_type("cpu");
    d->set_name("cpu");
    v1::RegisterWorkerResponse resp;
    grpc::Status s = worker_->RegisterWorker(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.heartbeat_interval_ms(), 1000);
    EXPECT_EQ(resp.lease_ttl_ms(), 60000);
    return resp.worker_id();
  }

  v1::LeaseJobResponse Lease(const std::string& worker_id, int wait_ms) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(wait_ms + 5000));
    v1::LeaseJobRequest req;
    req.set_worker_id(worker_id);
    req.set_wait_ms(wait_ms);
    v1::LeaseJobResponse resp;
    grpc::Status s = worker_->LeaseJob(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // Uploads `data` in chunks; returns the status and the response.
  grpc::Status Upload(const v1::Lease& lease, const std::string& name, const std::string& data,
                      const std::string& sha, v1::UploadArtifactResponse* resp,
                      int64_t token_override = -1) {
    grpc::ClientContext ctx;
    auto writer = worker_->UploadArtifact(&ctx, resp);
    const size_t chunk = 7;
    size_t off = 0;
    do {
      v1::UploadArtifactRequest req;
      if (off == 0) {
        req.set_job_id(lease.job_id());
        req.set_fencing_token(token_override >= 0 ? token_override : lease.fencing_token());
        req.set_name(name);
      }
      req.set_data(data.substr(off, chunk));
      off += chunk;
      if (off >= data.size()) {
        req.set_last(true);
        req.set_sha256(sha);
      }
      if (!writer->Write(req)) break;
    } while (off < data.size());
    writer->WritesDone();
    return writer->Finish();
  }

  v1::Experiment Get(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetExperimentRequest req;
    req.set_experiment_id(id);
    v1::Experiment e;
    grpc::Status s = client_->GetExperiment(&ctx, req, &e);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return e;
  }

  fs::path dir_;
  std::unique_ptr<SchedulerServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Scheduler::Stub> client_;
  std::unique_ptr<v1::Worker::Stub> worker_;
};

TEST_F(ServiceTest, SubmitValidatesAndStoresNothingOnReject) {
  grpc::ClientContext ctx;
  v1::SubmitExperimentRequest req;
  req.set_config_yaml("name: bad\nstages:\n  - id: a\n    kind: sleep\n    seconds: -3\n");
  v1::SubmitExperimentResponse resp;
  grpc::Status s = client_->SubmitExperiment(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("stages[0].seconds"), std::string::npos) << s.error_message();

  grpc::ClientContext lctx;
  v1::ListExperimentsResponse list;
  ASSERT_TRUE(client_->ListExperiments(&lctx, v1::ListExperimentsRequest(), &list).ok());
  EXPECT_EQ(list.experiments_size(), 0);
}

TEST_F(ServiceTest, SubmitGetListAndCancel) {
  v1::SubmitExperimentResponse a = Submit(kTwoStages);
  ASSERT_EQ(a.job_ids_size(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // distinct created_at_ms
  v1::SubmitExperimentResponse b = Submit(kOneStage);

  v1::Experiment e = Get(a.experiment_id());
  EXPECT_EQ(e.name(), "svc-test");
  EXPECT_EQ(e.owner(), "alice");  // from the YAML, not the request
  EXPECT_EQ(e.state(), v1::EXPERIMENT_QUEUED);
  EXPECT_EQ(e.config_yaml(), kTwoStages);
  EXPECT_EQ(e.config_hash().size(), 64u);
  ASSERT_EQ(e.jobs_size(), 2);
  EXPECT_EQ(e.jobs(0).state(), v1::JOB_QUEUED);
  EXPECT_EQ(e.jobs(1).state(), v1::JOB_BLOCKED);
  EXPECT_EQ(e.jobs(1).needs(0), "first");
  EXPECT_EQ(Get(b.experiment_id()).owner(), "tester");  // request's owner as default

  // Newest first, one per page.
  v1::ListExperimentsRequest lreq;
  lreq.set_page_size(1);
  v1::ListExperimentsResponse page1, page2;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(client_->ListExperiments(&ctx, lreq, &page1).ok());
  }
  ASSERT_EQ(page1.experiments_size(), 1);
  EXPECT_EQ(page1.experiments(0).id(), b.experiment_id());
  ASSERT_FALSE(page1.next_page_token().empty());
  lreq.set_page_token(page1.next_page_token());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(client_->ListExperiments(&ctx, lreq, &page2).ok());
  }
  ASSERT_EQ(page2.experiments_size(), 1);
  EXPECT_EQ(page2.experiments(0).id(), a.experiment_id());
  EXPECT_EQ(page2.experiments(0).jobs_size(), 2);
  EXPECT_TRUE(page2.next_page_token().empty());
  {
    grpc::ClientContext ctx;
    v1::ListExperimentsRequest by_owner;
    by_owner.set_owner("alice");
    v1::ListExperimentsResponse r;
    ASSERT_TRUE(client_->ListExperiments(&ctx, by_owner, &r).ok());
    ASSERT_EQ(r.experiments_size(), 1);
    EXPECT_EQ(r.experiments(0).id(), a.experiment_id());
  }

  grpc::ClientContext cctx;
  v1::CancelExperimentRequest creq;
  creq.set_experiment_id(a.experiment_id());
  v1::CancelExperimentResponse cresp;
  ASSERT_TRUE(client_->CancelExperiment(&cctx, creq, &cresp).ok());
  EXPECT_EQ(cresp.experiment().state(), v1::EXPERIMENT_CANCELLED);
  EXPECT_EQ(cresp.experiment().jobs(0).state(), v1::JOB_CANCELLED);

  grpc::ClientContext nctx;
  v1::Experiment none;
  v1::GetExperimentRequest nreq;
  nreq.set_experiment_id("exp-doesnotexist");
  EXPECT_EQ(client_->GetExperiment(&nctx, nreq, &none).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, WorkerLifecycleLogsArtifactsAndStreams) {
  std::string wid = Register();
  // Long poll parked before the submit is matched as soon as the job is queued.
  auto parked = std::async(std::launch::async, [&] { return Lease(wid, 10'000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  v1::SubmitExperimentResponse sub = Submit(kTwoStages);
  v1::LeaseJobResponse got = parked.get();
  ASSERT_TRUE(got.has_lease());
  const v1::Lease lease = got.lease();
  EXPECT_EQ(lease.job_id(), sub.job_ids(0));
  EXPECT_EQ(lease.stage_id(), "first");
  EXPECT_EQ(lease.kind(), "sleep");
  EXPECT_EQ(lease.attempt(), 1);
  EXPECT_EQ(lease.lease_ttl_ms(), 60000);
  EXPECT_NE(lease.spec_json().find("\"seconds\""), std::string::npos) << lease.spec_json();

  // Watch from the start: the stream ends with a terminal snapshot.
  auto watched = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    v1::WatchExperimentRequest req;
    req.set_experiment_id(sub.experiment_id());
    auto reader = client_->WatchExperiment(&ctx, req);
    v1::ExperimentEvent ev;
    std::vector<v1::ExperimentState> states;
    while (reader->Read(&ev)) states.push_back(ev.experiment().state());
    EXPECT_TRUE(reader->Finish().ok());
    return states;
  });
  // Follow logs from the start.
  auto followed = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    v1::StreamLogsRequest req;
    req.set_experiment_id(sub.experiment_id());
    req.set_follow(true);
    auto reader = client_->StreamLogs(&ctx, req);
    v1::LogLine line;
    std::vector<std::string> lines;
    while (reader->Read(&line)) lines.push_back(line.stage_id() + ":" + line.text());
    EXPECT_TRUE(reader->Finish().ok());
    return lines;
  });

  {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest req;
    req.set_worker_id(wid);
    req.set_job_id(lease.job_id());
    req.set_fencing_token(lease.fencing_token());
    req.set_progress(0.5);
    req.set_step(3);
    (*req.mutable_metrics())["loss"] = 0.25;
    v1::HeartbeatResponse resp;
    ASSERT_TRUE(worker_->Heartbeat(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.cancel());
  }
  {
    grpc::ClientContext ctx;
    v1::AppendLogsRequest req;
    req.set_job_id(lease.job_id());
    req.set_fencing_token(lease.fencing_token());
    req.add_lines("hello");
    req.add_lines("world");
    v1::AppendLogsResponse resp;
    ASSERT_TRUE(worker_->AppendLogs(&ctx, req, &resp).ok());
  }
  {  // stale token
    grpc::ClientContext ctx;
    v1::AppendLogsRequest req;
    req.set_job_id(lease.job_id());
    req.set_fencing_token(lease.fencing_token() + 100);
    req.add_lines("intruder");
    v1::AppendLogsResponse resp;
    EXPECT_EQ(worker_->AppendLogs(&ctx, req, &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }

  // Uploads: a good one, a wrong digest, a bad name and a stale token.
  std::string data;
  for (int i = 0; i < 100; ++i) data += "bytes-" + std::to_string(i) + ";";
  const std::string sha = Sha256Hex(data);
  v1::UploadArtifactResponse up;
  grpc::Status us = Upload(lease, "checkpoints/final.pt", data, sha, &up);
  ASSERT_TRUE(us.ok()) << us.error_message();
  EXPECT_EQ(up.artifact().sha256(), sha);
  EXPECT_EQ(up.artifact().size(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(up.artifact().stage_id(), "first");

  v1::UploadArtifactResponse bad;
  EXPECT_EQ(Upload(lease, "corrupt.bin", data, Sha256Hex("other"), &bad).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(Upload(lease, "../escape", data, sha, &bad).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Upload(lease, "stale.bin", data, sha, &bad, lease.fencing_token() + 1).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::ListArtifactsResponse arts;
  {
    grpc::ClientContext ctx;
    v1::ListArtifactsRequest req;
    req.set_experiment_id(sub.experiment_id());
    ASSERT_TRUE(client_->ListArtifacts(&ctx, req, &arts).ok());
  }
  ASSERT_EQ(arts.artifacts_size(), 1);  // nothing of the rejected uploads is listed
  EXPECT_EQ(arts.artifacts(0).name(), "checkpoints/final.pt");

  // Download whole, then resume from an offset.
  auto download = [&](int64_t offset, std::string* out, v1::ArtifactChunk* last) {
    grpc::ClientContext ctx;
    v1::DownloadArtifactRequest req;
    req.set_experiment_id(sub.experiment_id());
    req.set_stage_id("first");
    req.set_name("checkpoints/final.pt");
    req.set_offset(offset);
    auto reader = client_->DownloadArtifact(&ctx, req);
    v1::ArtifactChunk c;
    while (reader->Read(&c)) {
      EXPECT_EQ(c.offset(), offset + static_cast<int64_t>(out->size()));
      EXPECT_LE(c.data().size(), static_cast<size_t>(kDownloadChunkBytes));
      *out += c.data();
      *last = c;
    }
    return reader->Finish();
  };
  std::string whole, tail;
  v1::ArtifactChunk last;
  ASSERT_TRUE(download(0, &whole, &last).ok());
  EXPECT_EQ(whole, data);
  EXPECT_EQ(last.sha256(), sha);
  EXPECT_EQ(last.total_size(), static_cast<int64_t>(data.size()));
  ASSERT_TRUE(download(100, &tail, &last).ok());
  EXPECT_EQ(tail, data.substr(100));
  std::string none;
  EXPECT_EQ(download(static_cast<int64_t>(data.size()) + 1, &none, &last).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);

  {
    grpc::ClientContext ctx;
    v1::ListWorkersResponse resp;
    ASSERT_TRUE(client_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok());
    ASSERT_EQ(resp.workers_size(), 1);
    EXPECT_EQ(resp.workers(0).id(), wid);
    EXPECT_TRUE(resp.workers(0).alive());
    ASSERT_EQ(resp.workers(0).running_job_ids_size(), 1);
    EXPECT_EQ(resp.workers(0).running_job_ids(0), lease.job_id());
  }

  auto complete = [&](const v1::Lease& l) {
    grpc::ClientContext ctx;
    v1::CompleteJobRequest req;
    req.set_job_id(l.job_id());
    req.set_fencing_token(l.fencing_token());
    req.set_succeeded(true);
    (*req.mutable_metrics())["accuracy"] = 0.9;
    v1::CompleteJobResponse resp;
    return worker_->CompleteJob(&ctx, req, &resp);
  };
  ASSERT_TRUE(complete(lease).ok());
  EXPECT_EQ(complete(lease).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // The dependant was released; it gets the first stage's artifact as input.
  v1::LeaseJobResponse second = Lease(wid, 5'000);
  ASSERT_TRUE(second.has_lease());
  EXPECT_EQ(second.lease().stage_id(), "second");
  ASSERT_EQ(second.lease().inputs_size(), 1);
  EXPECT_EQ(second.lease().inputs(0).stage_id(), "first");
  EXPECT_EQ(second.lease().inputs(0).sha256(), sha);
  {
    grpc::ClientContext ctx;
    v1::AppendLogsRequest req;
    req.set_job_id(second.lease().job_id());
    req.set_fencing_token(second.lease().fencing_token());
    req.add_lines("done soon");
    v1::AppendLogsResponse resp;
    ASSERT_TRUE(worker_->AppendLogs(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(complete(second.lease()).ok());

  std::vector<v1::ExperimentState> states = watched.get();
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), v1::EXPERIMENT_SUCCEEDED);
  std::vector<std::string> lines = followed.get();
  EXPECT_EQ(lines, (std::vector<std::string>{"first:hello", "first:world", "second:done soon"}));

  v1::Experiment e = Get(sub.experiment_id());
  EXPECT_EQ(e.state(), v1::EXPERIMENT_SUCCEEDED);
  EXPECT_DOUBLE_EQ(e.jobs(0).metrics().at("loss"), 0.25);
  EXPECT_DOUBLE_EQ(e.jobs(0).metrics().at("accuracy"), 0.9);

  // Non-follow logs of one stage end at once.
  grpc::ClientContext ctx;
  v1::StreamLogsRequest req;
  req.set_experiment_id(sub.experiment_id());
  req.set_stage_id("second");
  auto reader = client_->StreamLogs(&ctx, req);
  v1::LogLine line;
  std::vector<std::string> second_lines;
  while (reader->Read(&line)) second_lines.push_back(line.text());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(second_lines, std::vector<std::string>{"done soon"});
}

TEST_F(ServiceTest, LongPollAnswersEmptyAtDeadlineAndUnknownWorkerIsNotFound) {
  std::string wid = Register();
  auto start = std::chrono::steady_clock::now();
  v1::LeaseJobResponse r = Lease(wid, 200);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.has_lease());
  EXPECT_GE(waited, std::chrono::milliseconds(150));

  grpc::ClientContext ctx;
  v1::LeaseJobRequest req;
  req.set_worker_id("w-unknown");
  v1::LeaseJobResponse resp;
  EXPECT_EQ(worker_->LeaseJob(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, HealthServiceReportsServing) {
  // grpc.health.v1.Health/Check with an empty request; SERVING = field 1 = 1.
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

TEST(ServerConfigTest, OnlyLoopbackWithoutAllowRemote) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:7070"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:0"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:7070"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:7070"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:7070"));
  EXPECT_FALSE(IsLoopbackAddress("10.1.2.3:7070"));
  EXPECT_FALSE(IsLoopbackAddress("127.evil.com:7070"));
  ServerConfig c;
  c.listen = "0.0.0.0:0";
  c.data_dir = "/tmp/unused";
  EXPECT_EQ(SchedulerServer::Start(c, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace topolab::server
