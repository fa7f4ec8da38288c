// The whole daemon against an in-process fake scheduler (both gRPC services
// on 127.0.0.1), running real `topolab-worker run-job` children of the
// `sleep` kind: success with uploads, failure, cancel, stale fencing token,
// input downloads and resume, checksum and name checks, a crashing child.
#include "worker/daemon/worker_daemon.h"

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "proto/sha256.h"
#include "tests/test_util.h"
#include "topolab.grpc.pb.h"

namespace topolab::worker {
namespace {

using std::chrono::milliseconds;

// Both services of the scheduler, with scripted answers.
class FakeScheduler final : public v1::Worker::Service, public v1::Scheduler::Service {
 public:
  // ---- scripting (test thread)
  void AddLease(v1::Lease lease) {
    std::lock_guard<std::mutex> lock(mu_);
    leases_.push_back(std::move(lease));
    cv_.notify_all();
  }
  void PutDownload(const std::string& stage, const std::string& name, std::string bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    downloads_[stage + "/" + name] = std::move(bytes);
  }
  void CancelOnHeartbeat(const std::string& job) {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_.insert(job);
  }
  void StaleTokenOnHeartbeat(const std::string& job) {
    std::lock_guard<std::mutex> lock(mu_);
    stale_.insert(job);
  }
  // Waits until pred() holds (under the lock); false after 60 s.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), pred);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Lease> leases_;
  std::map<std::string, std::string> downloads_;
  std::set<std::string> cancel_, stale_;
  int registrations_ = 0;
  int heartbeats_ = 0;
  std::map<std::string, std::vector<std::string>> logs_;
  std::map<std::string, std::map<std::string, std::string>> artifacts_;  // job -> name -> bytes
  std::vector<v1::CompleteJobRequest> completes_;

  std::string LogsOf(const std::string& job) {
    std::string all;
    for (const std::string& l : logs_[job]) all += l + "\n";
    return all;
  }

 private:
  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* req,
                              v1::RegisterWorkerResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++registrations_;
    EXPECT_EQ(req->job_kinds_size(), 1);
    resp->set_worker_id("w1");
    resp->set_heartbeat_interval_ms(100);
    resp->set_lease_ttl_ms(5000);
    return grpc::Status::OK;
  }
  grpc::Status LeaseJob(grpc::ServerContext*, const v1::LeaseJobRequest* req,
                        v1::LeaseJobResponse* resp) override {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_EQ(req->worker_id(), "w1");
    if (cv_.wait_for(lock, milliseconds(req->wait_ms()), [&] { return !leases_.empty(); })) {
      *resp->mutable_lease() = leases_.front();
      leases_.pop_front();
    }
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++heartbeats_;
    cv_.notify_all();
    if (stale_.count(req->job_id())) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "stale fencing token");
    }
    resp->set_cancel(cancel_.count(req->job_id()) > 0);
    return grpc::Status::OK;
  }
  grpc::Status AppendLogs(grpc::ServerContext*, const v1::AppendLogsRequest* req,
                          v1::AppendLogsResponse*) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : req->lines()) logs_[req->job_id()].push_back(l);
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status UploadArtifact(grpc::ServerContext*, grpc::ServerReader<v1::UploadArtifactRequest>* reader,
                              v1::UploadArtifactResponse* resp) override {
    v1::UploadArtifactRequest msg;
    std::string job, name, data, sha;
    bool last = false;
    while (reader->Read(&msg)) {
      EXPECT_LE(msg.data().size(), size_t{1} << 20);
      job = msg.job_id();
      name = msg.name();
      data += msg.data();
      if (msg.last()) {
        last = true;
        sha = msg.sha256();
      }
    }
    if (!last || sha != Sha256Hex(data)) return grpc::Status(grpc::StatusCode::DATA_LOSS, "sha256 mismatch");
    std::lock_guard<std::mutex> lock(mu_);
    artifacts_[job][name] = data;
    resp->mutable_artifact()->set_name(name);
    resp->mutable_artifact()->set_sha256(sha);
    resp->mutable_artifact()->set_size(static_cast<int64_t>(data.size()));
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status CompleteJob(grpc::ServerContext*, const v1::CompleteJobRequest* req,
                           v1::CompleteJobResponse*) override {
    std::lock_guard<std::mutex> lock(mu_);
    completes_.push_back(*req);
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status DownloadArtifact(grpc::ServerContext*, const v1::DownloadArtifactRequest* req,
                                grpc::ServerWriter<v1::ArtifactChunk>* writer) override {
    std::string bytes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = downloads_.find(req->stage_id() + "/" + req->name());
      if (it == downloads_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such artifact");
      bytes = it->second;
    }
    const std::string sha = Sha256Hex(bytes);
    size_t off = static_cast<size_t>(req->offset());
    do {
      v1::ArtifactChunk c;
      size_t n = std::min(bytes.size() - off, size_t{1} << 20);
      c.set_data(bytes.substr(off, n));
      c.set_offset(static_cast<int64_t>(off));
      c.set_total_size(static_cast<int64_t>(bytes.size()));
      c.set_sha256(sha);
      writer->Write(c);
      off += n;
    } while (off < bytes.size());
    return grpc::Status::OK;
  }
};

class WorkerDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/topolab_daemon_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(static_cast<v1::Worker::Service*>(&fake_));
    builder.RegisterService(static_cast<v1::Scheduler::Service*>(&fake_));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  void TearDown() override {
    StopDaemon();
    server_->Shutdown(std::chrono::system_clock::now() + milliseconds(500));
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  WorkerConfig Config() {
    WorkerConfig c;
    c.work_dir = root_ / "work";
    c.job_kinds = {"sleep"};
    c.devices = {{"cpu", "cpu", 1 << 30}};
    c.child_binary = TOPOLAB_WORKER_BIN;
    c.threads = 1;
    c.lease_wait = milliseconds(200);
    c.stop_grace = milliseconds(3000);
    c.log_flush_interval = milliseconds(50);
    c.keep_job_dirs = true;
    c.backoff.initial = milliseconds(20);
    c.backoff.max = milliseconds(200);
    return c;
  }
  void StartDaemon(WorkerConfig c) {
    auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    auto log = std::make_shared<spdlog::logger>("worker", std::make_shared<spdlog::sinks::null_sink_mt>());
    daemon_ = std::make_unique<WorkerDaemon>(std::move(c), v1::Worker::NewStub(channel),
                                             v1::Scheduler::NewStub(channel), log);
    thread_ = std::thread([this] { run_status_ = daemon_->Run(); });
  }
  void StopDaemon() {
    if (daemon_ == nullptr) return;
    daemon_->Shutdown();
    thread_.join();
    EXPECT_OK(run_status_);
    daemon_.reset();
  }
  static v1::Lease SleepLease(const std::string& job, const std::string& spec_json) {
    v1::Lease l;
    l.set_job_id(job);
    l.set_experiment_id("e1");
    l.set_stage_id("s");
    l.set_kind("sleep");
    l.set_attempt(1);
    l.set_fencing_token(7);
    l.set_spec_json(spec_json);
    return l;
  }
  bool WaitForFinished(int64_t n) {
    for (int i = 0; i < 6000 && daemon_->finished_jobs() < n; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    return daemon_->finished_jobs() >= n;
  }
  const v1::CompleteJobRequest* CompleteOf(const std::string& job) {
    for (const auto& c : fake_.completes_) {
      if (c.job_id() == job) return &c;
    }
    return nullptr;
  }

  std::filesystem::path root_;
  FakeScheduler fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<WorkerDaemon> daemon_;
  std::thread thread_;
  absl::Status run_status_;
};

TEST_F(WorkerDaemonTest, RunsJobUploadsArtifactsAndCompletes) {
  fake_.AddLease(SleepLease("j1", R"({"kind":"sleep","id":"s","seconds":0.3})"));
  StartDaemon(Config());
  ASSERT_TRUE(fake_.WaitFor([&] { return !fake_.completes_.empty(); }));
  ASSERT_TRUE(WaitForFinished(1));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  const v1::CompleteJobRequest* c = CompleteOf("j1");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->succeeded()) << c->message();
  EXPECT_EQ(c->fencing_token(), 7);
  EXPECT_DOUBLE_EQ(c->metrics().at("step"), 10.0);
  EXPECT_EQ(fake_.registrations_, 1);
  auto& arts = fake_.artifacts_["j1"];
  ASSERT_TRUE(arts.count("result.json"));
  ASSERT_TRUE(arts.count("checkpoints/sleep_state.json"));
  EXPECT_NE(arts["result.json"].find("\"steps\":10"), std::string::npos);
  EXPECT_NE(arts["checkpoints/sleep_state.json"].find("\"step\":10"), std::string::npos);
  EXPECT_NE(fake_.LogsOf("j1").find("slept 10 steps"), std::string::npos) << fake_.LogsOf("j1");
}

TEST_F(WorkerDaemonTest, FailedJobCompletesWithItsMessage) {
  fake_.AddLease(SleepLease("j1", R"({"kind":"sleep","seconds":0.05,"fail":true})"));
  StartDaemon(Config());
  ASSERT_TRUE(fake_.WaitFor([&] { return !fake_.completes_.empty(); }));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  EXPECT_FALSE(fake_.completes_[0].succeeded());
  EXPECT_NE(fake_.completes_[0].message().find("failed as requested"), std::string::npos)
      << fake_.completes_[0].message();
}

TEST_F(WorkerDaemonTest, CancelFromHeartbeatStopsTheChild) {
  fake_.CancelOnHeartbeat("j1");
  fake_.AddLease(SleepLease("j1", R"({"kind":"sleep","seconds":60})"));
  auto start = std::chrono::steady_clock::now();
  StartDaemon(Config());
  ASSERT_TRUE(fake_.WaitFor([&] { return !fake_.completes_.empty(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  EXPECT_FALSE(fake_.completes_[0].succeeded());
  EXPECT_EQ(fake_.completes_[0].message(), "cancelled");
  EXPECT_NE(fake_.LogsOf("j1").find("job cancelled"), std::string::npos);
}

TEST_F(WorkerDaemonTest, StaleFencingTokenDropsTheJobWithoutCompleting) {
  fake_.StaleTokenOnHeartbeat("j1");
  fake_.AddLease(SleepLease("j1", R"({"kind":"sleep","seconds":60})"));
  StartDaemon(Config());
  ASSERT_TRUE(WaitForFinished(1));  // the child was stopped long before 60 s
  std::lock_guard<std::mutex> lock(fake_.mu_);
  EXPECT_TRUE(fake_.completes_.empty());
}

TEST_F(WorkerDaemonTest, DownloadsInputsAndResumesFromOwnArtifacts) {
  const std::string input = std::string(3 << 20, 'x') + "tail";  // several chunks
  fake_.PutDownload("pre", "checkpoints/final.pt", input);
  fake_.PutDownload("s", "checkpoints/sleep_state.json", "{\"step\":6}\n");
  v1::Lease l = SleepLease("j1", R"({"kind":"sleep","seconds":0.2})");
  l.set_attempt(2);
  auto* in = l.add_inputs();
  in->set_stage_id("pre");
  in->set_name("checkpoints/final.pt");
  in->set_sha256(Sha256Hex(input));
  auto* own = l.add_own_artifacts();
  own->set_stage_id("s");
  own->set_name("checkpoints/sleep_state.json");
  own->set_sha256(Sha256Hex("{\"step\":6}\n"));
  fake_.AddLease(l);
  StartDaemon(Config());
  ASSERT_TRUE(fake_.WaitFor([&] { return !fake_.completes_.empty(); }));
  ASSERT_TRUE(WaitForFinished(1));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  EXPECT_TRUE(fake_.completes_[0].succeeded()) << fake_.completes_[0].message();
  EXPECT_NE(fake_.LogsOf("j1").find("resumed from step 6"), std::string::npos) << fake_.LogsOf("j1");
  EXPECT_NE(fake_.artifacts_["j1"]["result.json"].find("\"resumed_from\":6"), std::string::npos);
  std::ifstream f(root_ / "work/jobs/j1/inputs/pre/checkpoints/final.pt", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, input);
}

TEST_F(WorkerDaemonTest, InputWithWrongChecksumFailsTheJob) {
  fake_.PutDownload("pre", "model.pt", "real bytes");
  v1::Lease l = SleepLease("j1", R"({"kind":"sleep","seconds":0.05})");
  auto* in = l.add_inputs();
  in->set_stage_id("pre");
  in->set_name("model.pt");
  in->set_sha256(Sha256Hex("other bytes"));
  fake_.AddLease(l);
  StartDaemon(Config());
  ASSERT_TRUE(fake_.WaitFor([&] { return !fake_.completes_.empty(); }));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  EXPECT_FALSE(fake_.completes_[0].succeeded());
  EXPECT_NE(fake_.completes_[0].message().find("sha256 mismatch"), std::string::npos)
      << fake_.completes_[0].message();
  EXPECT_FALSE(std::filesystem::exists(root_ / "work/jobs/j1/inputs/pre/model.pt"));
}

TEST_F(WorkerDaemonTest, InputNameEscapingTheFolderIsRefused) {
  fake_.PutDownload("pre", "../../../evil", "x");
  v1::Lease l = SleepLease("j1", R"({"kind":"sleep","seconds":0.05})");
  auto* in = l.add_inputs();
  in->set_stage_id("pre");
  in->set_name("../../../evil");
  in->set_sha256(Sha256Hex("x"));
  fake_.AddLease(l);
  StartDaemon(Config());
  ASSERT_TRUE(fake_.WaitFor([&] { return !fake_.completes_.empty(); }));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  EXPECT_FALSE(fake_.completes_[0].succeeded());
  EXPECT_NE(fake_.completes_[0].message().find("'..' segment"), std::string::npos)
      << fake_.completes_[0].message();
  EXPECT_FALSE(std::filesystem::exists(root_ / "work/evil"));
  EXPECT_FALSE(std::filesystem::exists(root_ / "evil"));
}

TEST_F(WorkerDaemonTest, CrashedChildFailsTheJobAndTheDaemonKeepsServing) {
  const std::filesystem::path script = root_ / "crash.sh";
  {
    std::ofstream s(script);
    s << "#!/bin/sh\necho 'about to die' >&2\nkill -KILL $$\n";
  }
  chmod(script.c_str(), 0755);
  WorkerConfig c = Config();
  c.child_binary = script.string();
  fake_.AddLease(SleepLease("j1", R"({"kind":"sleep"})"));
  fake_.AddLease(SleepLease("j2", R"({"kind":"sleep"})"));
  StartDaemon(c);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.completes_.size() == 2; }));
  std::lock_guard<std::mutex> lock(fake_.mu_);
  for (const auto& done : fake_.completes_) {
    EXPECT_FALSE(done.succeeded());
    EXPECT_NE(done.message().find("child killed by signal 9 (SIGKILL; possibly out of memory)"),
              std::string::npos)
        << done.message();
    EXPECT_NE(done.message().find("about to die"), std::string::npos) << done.message();
  }
}

}  // namespace
}  // namespace topolab::worker
