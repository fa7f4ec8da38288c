// End-to-end tests of the `topolab` binary against the real
// `topolab-scheduler` on 127.0.0.1, with a hand-driven fake worker (the
// Worker gRPC service called directly) so jobs, logs and artifacts are
// exactly what each test says, with no LibTorch involved.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proto/sha256.h"
#include "tests/test_util.h"
#include "topolab.grpc.pb.h"

namespace topolab {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

struct CliResult {
  int rc = -1;
  std::string out, err;
};

class CliE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/topolab_cli_e2e_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    const fs::path log = root_ / "scheduler.log";
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      std::freopen(log.c_str(), "w", stdout);
      std::freopen((root_ / "scheduler.err").c_str(), "w", stderr);
      const std::string data = (root_ / "data").string();
      execl(TOPOLAB_SCHEDULER_BIN, TOPOLAB_SCHEDULER_BIN, "--listen", "127.0.0.1:0", "--data-dir", data.c_str(),
            "--lease-ttl-ms", "60000", static_cast<char*>(nullptr));
      _exit(127);
    }
    std::regex re("listening on (\\S+)");
    std::smatch m;
    auto deadline = std::chrono::steady_clock::now() + seconds(60);
    std::string text;
    while (std::chrono::steady_clock::now() < deadline) {
      text = ReadFile(log);
      if (std::regex_search(text, m, re)) break;
      std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_TRUE(m.size() > 1) << "scheduler did not start: " << text << ReadFile(root_ / "scheduler.err");
    addr_ = m[1].str();
    auto channel = grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials());
    worker_ = v1::Worker::NewStub(channel);
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Runs `topolab --scheduler ADDR ARGS`, capturing both streams.
  CliResult Cli(const std::string& args, const std::string& env = "") {
    const fs::path out = root_ / "cli.out", err = root_ / "cli.err";
    const std::string cmd = env + " " + TOPOLAB_CLI_BIN + " --scheduler " + addr_ + " " + args + " >" +
                            out.string() + " 2>" + err.string() + " </dev/null";
    int status = std::system(cmd.c_str());
    CliResult r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadFile(out);
    r.err = ReadFile(err);
    return r;
  }

  std::string Submit(const std::string& yaml) {
    const fs::path f = root_ / "exp.yaml";
    WriteFile(f, yaml);
    CliResult r = Cli("submit " + f.string());
    EXPECT_EQ(r.rc, 0) << r.out << r.err;
    std::string id = r.out;
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    return id;
  }

  // ------------------------------------------------------------ fake worker

  std::string Register() {
    grpc::ClientContext ctx;
    v1::RegisterWorkerRequest req;
    req.set_host("fakehost");
    auto* d = req.add_devices();
    d->set_type("cpu");
    req.add_job_kinds("sleep");
    req.set_max_concurrent_jobs(4);
    v1::RegisterWorkerResponse resp;
    grpc::Status s = worker_->RegisterWorker(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.worker_id();
  }

  v1::Lease Lease(const std::string& worker_id) {
    for (int i = 0; i < 20; ++i) {
      grpc::ClientContext ctx;
      v1::LeaseJobRequest req;
      req.set_worker_id(worker_id);
      req.set_wait_ms(1000);
      v1::LeaseJobResponse resp;
      grpc::Status s = worker_->LeaseJob(&ctx, req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (resp.has_lease()) return resp.lease();
    }
    ADD_FAILURE() << "no lease";
    return {};
  }

  void Heartbeat(const std::string& worker_id, const v1::Lease& l, double progress) {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest req;
    req.set_worker_id(worker_id);
    req.set_job_id(l.job_id());
    req.set_fencing_token(l.fencing_token());
    req.set_progress(progress);
    req.set_step(7);
    (*req.mutable_metrics())["loss"] = 0.25;
    v1::HeartbeatResponse resp;
    grpc::Status s = worker_->Heartbeat(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  void Logs(const v1::Lease& l, const std::vector<std::string>& lines) {
    grpc::ClientContext ctx;
    v1::AppendLogsRequest req;
    req.set_job_id(l.job_id());
    req.set_fencing_token(l.fencing_token());
    for (const auto& x : lines) req.add_lines(x);
    v1::AppendLogsResponse resp;
    grpc::Status s = worker_->AppendLogs(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  void Upload(const v1::Lease& l, const std::string& name, const std::string& data) {
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto w = worker_->UploadArtifact(&ctx, &resp);
    const size_t kChunk = 256 * 1024;
    size_t pos = 0;
    do {
      v1::UploadArtifactRequest req;
      req.set_job_id(l.job_id());
      req.set_fencing_token(l.fencing_token());
      req.set_name(name);
      req.set_data(data.substr(pos, kChunk));
      pos += kChunk;
      if (pos >= data.size()) {
        req.set_last(true);
        req.set_sha256(Sha256Hex(data));
      }
      ASSERT_TRUE(w->Write(req));
    } while (pos < data.size());
    w->WritesDone();
    grpc::Status s = w->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void Complete(const v1::Lease& l, bool ok, const std::string& msg = "") {
    grpc::ClientContext ctx;
    v1::CompleteJobRequest req;
    req.set_job_id(l.job_id());
    req.set_fencing_token(l.fencing_token());
    req.set_succeeded(ok);
    req.set_message(msg);
    v1::CompleteJobResponse resp;
    grpc::Status s = worker_->CompleteJob(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  fs::path root_;
  pid_t pid_ = -1;
  std::string addr_;
  std::unique_ptr<v1::Worker::Stub> worker_;
};

const char kTwoStages[] = R"(name: cli-e2e
stages:
  - id: first
    kind: sleep
    seconds: 0
  - id: second
    kind: sleep
    needs: [first]
)";

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST_F(CliE2ETest, InvalidConfigIsRejectedLocallyWithExitTwo) {
  const fs::path f = root_ / "bad.yaml";
  WriteFile(f, "name: x\nstages:\n  - {id: a, kind: sleep, seconds: -1}\n");
  CliResult r = Cli("submit " + f.string());
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("stages[0].seconds: must be a number in [0, 86400]"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  CliResult ls = Cli("--output json ls");
  EXPECT_EQ(ls.rc, 0) << ls.err;
  EXPECT_EQ(nlohmann::json::parse(ls.out).size(), 0u) << "nothing was stored";
  CliResult missing = Cli("submit " + (root_ / "nope.yaml").string());
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
}

TEST_F(CliE2ETest, UnreachableSchedulerAndBadUsage) {
  const std::string cli = TOPOLAB_CLI_BIN;
  int st = std::system((cli + " --scheduler 127.0.0.1:1 ls >/dev/null 2>" + (root_ / "e").string()).c_str());
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_EQ(ReadFile(root_ / "e"), "topolab: error: cannot reach scheduler at 127.0.0.1:1\n");
  // The environment variable names the scheduler too.
  st = std::system(("TOPOLAB_SCHEDULER=127.0.0.1:1 " + cli + " workers >/dev/null 2>" + (root_ / "e").string()).c_str());
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_EQ(ReadFile(root_ / "e"), "topolab: error: cannot reach scheduler at 127.0.0.1:1\n");
  EXPECT_EQ(Cli("frobnicate").rc, 2);
  EXPECT_EQ(Cli("ls --bogus").rc, 2);
  EXPECT_EQ(Cli("show").rc, 2);
  CliResult bad_state = Cli("ls --state done");
  EXPECT_EQ(bad_state.rc, 2);
  EXPECT_NE(bad_state.err.find("--state: unknown state \"done\""), std::string::npos);
  CliResult nf = Cli("show no-such-experiment");
  EXPECT_EQ(nf.rc, 2) << nf.err;
  EXPECT_NE(nf.err.find("topolab: error: "), std::string::npos);
}

TEST_F(CliE2ETest, SubmitRunPullAndResume) {
  const std::string id = Submit(kTwoStages);
  ASSERT_FALSE(id.empty());

  CliResult ls = Cli("ls");
  ASSERT_EQ(ls.rc, 0) << ls.err;
  EXPECT_NE(ls.out.find(id), std::string::npos);
  EXPECT_NE(ls.out.find("cli-e2e"), std::string::npos);
  EXPECT_EQ(Cli("ls --name other").out.find(id), std::string::npos);
  EXPECT_NE(Cli("ls --state queued").out.find(id), std::string::npos);

  const std::string wid = Register();
  CliResult workers = Cli("workers");
  EXPECT_EQ(workers.rc, 0);
  EXPECT_NE(workers.out.find("fakehost"), std::string::npos) << workers.out;

  // First job: logs, progress, two artifacts (one of several chunks).
  v1::Lease l1 = Lease(wid);
  ASSERT_EQ(l1.stage_id(), "first");
  Logs(l1, {"hello from first", "step 7 loss=0.25"});
  Heartbeat(wid, l1, 0.5);
  CliResult show = Cli("show " + id);
  ASSERT_EQ(show.rc, 0) << show.err;
  EXPECT_NE(show.out.find("RUNNING"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("50%"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("loss=0.25"), std::string::npos) << show.out;
  const std::string big = RandomBytes(2'500'000, 1);
  const std::string small = "{\"loss\": 0.25}\n";
  Upload(l1, "checkpoints/final.pt", big);
  Upload(l1, "metrics.json", small);
  Complete(l1, true);

  v1::Lease l2 = Lease(wid);
  ASSERT_EQ(l2.stage_id(), "second");
  Logs(l2, {"second says hi"});
  Upload(l2, "result.json", "{}");
  Complete(l2, true);

  CliResult watch = Cli("watch " + id);
  EXPECT_EQ(watch.rc, 0) << watch.out << watch.err;
  EXPECT_NE(watch.out.find("SUCCEEDED"), std::string::npos) << watch.out;
  EXPECT_EQ(watch.out.find("\033["), std::string::npos) << "no ANSI codes when stdout is not a TTY";

  CliResult logs = Cli("logs " + id);
  EXPECT_EQ(logs.rc, 0) << logs.err;
  EXPECT_NE(logs.out.find("[first] hello from first"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("[second] second says hi"), std::string::npos) << logs.out;
  CliResult one = Cli("logs " + id + " --job second");
  EXPECT_EQ(one.out.find("hello from first"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("second says hi\n"), std::string::npos) << one.out;

  // Pull everything: files land at DIR/<stage>/<name> with the right bytes.
  const fs::path out = root_ / "pulled";
  CliResult pull = Cli("pull " + id + " -o " + out.string());
  ASSERT_EQ(pull.rc, 0) << pull.out << pull.err;
  EXPECT_EQ(ReadFile(out / "first/checkpoints/final.pt"), big);
  EXPECT_EQ(ReadFile(out / "first/metrics.json"), small);
  EXPECT_EQ(ReadFile(out / "second/result.json"), "{}");
  EXPECT_NE(pull.out.find("3 artifacts"), std::string::npos) << pull.out;

  // Again: nothing to fetch.
  pull = Cli("pull " + id + " -o " + out.string());
  ASSERT_EQ(pull.rc, 0);
  EXPECT_NE(pull.out.find("first/checkpoints/final.pt  2.4 MiB  up to date"), std::string::npos) << pull.out;

  // A partial download resumes from its size.
  fs::remove(out / "first/checkpoints/final.pt");
  WriteFile(out / "first/checkpoints/final.pt.part", big.substr(0, 1'000'000));
  pull = Cli("pull " + id + " -o " + out.string() + " --artifact 'checkpoints/*'");
  ASSERT_EQ(pull.rc, 0) << pull.err;
  EXPECT_NE(pull.out.find("resumed"), std::string::npos) << pull.out;
  EXPECT_EQ(ReadFile(out / "first/checkpoints/final.pt"), big);
  EXPECT_FALSE(fs::exists(out / "first/checkpoints/final.pt.part"));

  // A corrupt partial file never becomes the artifact: the digest check fails,
  // the partial file is dropped, and the next pull gets it right.
  fs::remove(out / "first/checkpoints/final.pt");
  WriteFile(out / "first/checkpoints/final.pt.part", std::string(1'000'000, 'x'));
  pull = Cli("pull " + id + " -o " + out.string() + " -a 'first/checkpoints/final.pt'");
  EXPECT_EQ(pull.rc, 1);
  EXPECT_NE(pull.err.find("sha256 mismatch"), std::string::npos) << pull.err;
  EXPECT_FALSE(fs::exists(out / "first/checkpoints/final.pt"));
  EXPECT_FALSE(fs::exists(out / "first/checkpoints/final.pt.part"));
  pull = Cli("pull " + id + " -o " + out.string() + " -a 'first/checkpoints/final.pt'");
  EXPECT_EQ(pull.rc, 0) << pull.err;
  EXPECT_EQ(ReadFile(out / "first/checkpoints/final.pt"), big);

  // Globs select; a glob matching nothing fails.
  const fs::path only_json = root_ / "json";
  pull = Cli("pull " + id + " -o " + only_json.string() + " --artifact '*.json'");
  ASSERT_EQ(pull.rc, 0) << pull.err;
  EXPECT_TRUE(fs::exists(only_json / "first/metrics.json"));
  EXPECT_TRUE(fs::exists(only_json / "second/result.json"));
  EXPECT_FALSE(fs::exists(only_json / "first/checkpoints"));
  EXPECT_EQ(Cli("pull " + id + " -o " + only_json.string() + " --artifact '*.npy'").rc, 1);

  // JSON output parses and carries the ids.
  CliResult js = Cli("-O json show " + id);
  ASSERT_EQ(js.rc, 0);
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["state"], "EXPERIMENT_SUCCEEDED");
  EXPECT_EQ(j["jobs"].size(), 2u);
  CliResult arts = Cli("--output json artifacts " + id);
  ASSERT_EQ(arts.rc, 0);
  EXPECT_EQ(nlohmann::json::parse(arts.out).size(), 3u);
}

TEST_F(CliE2ETest, FailedJobMakesWatchAndWaitExitOne) {
  const std::string wid = Register();
  const fs::path f = root_ / "exp.yaml";
  WriteFile(f, kTwoStages);
  // submit --wait in the background while the fake worker fails the job.
  std::thread fail([&] {
    v1::Lease l = Lease(wid);
    Complete(l, false, "boom: out of memory");
  });
  CliResult r = Cli("submit --wait " + f.string());
  fail.join();
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("FAILED: stage first failed: boom: out of memory"), std::string::npos) << r.err;
  std::string id = r.out.substr(0, r.out.find('\n'));
  CliResult w = Cli("watch " + id);
  EXPECT_EQ(w.rc, 1);
  CliResult show = Cli("show " + id);
  EXPECT_NE(show.out.find("CANCELLED"), std::string::npos) << "the dependant is cancelled\n" << show.out;
}

TEST_F(CliE2ETest, CancelEndsTheExperiment) {
  const std::string id = Submit(kTwoStages);
  CliResult c = Cli("cancel " + id);
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("CANCELLED"), std::string::npos) << c.out;
  EXPECT_EQ(Cli("watch " + id).rc, 1);
  EXPECT_NE(Cli("ls --state cancelled").out.find(id), std::string::npos);
  EXPECT_EQ(Cli("cancel no-such-id").rc, 2);
}

TEST_F(CliE2ETest, CompareShowsTheSettingsThatDiffer) {
  const std::string a = Submit(kTwoStages);
  std::string other = kTwoStages;
  other.replace(other.find("seconds: 0"), 10, "seconds: 2");
  const std::string b = Submit(other);
  CliResult c = Cli("compare " + a + " " + b);
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("stages.first.seconds"), std::string::npos) << c.out;
  EXPECT_EQ(c.out.find("stages.second.seconds"), std::string::npos) << "equal settings are not listed\n" << c.out;
  EXPECT_EQ(Cli("compare " + a).rc, 2);
  EXPECT_EQ(Cli("compare " + a + " nope").rc, 2);
}

TEST_F(CliE2ETest, LogsFollowStreamsUntilTheExperimentEnds) {
  const std::string wid = Register();
  const std::string id = Submit("name: f\nstages:\n  - {id: only, kind: sleep}\n");
  std::thread job([&] {
    v1::Lease l = Lease(wid);
    Logs(l, {"line one"});
    std::this_thread::sleep_for(milliseconds(1500));
    Logs(l, {"line two"});
    Complete(l, true);
  });
  CliResult r = Cli("logs -f " + id);
  job.join();
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("[only] line one\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[only] line two\n"), std::string::npos) << r.out;
  CliResult js = Cli("-O json logs " + id + " --job only");
  ASSERT_EQ(js.rc, 0);
  std::istringstream lines(js.out);
  std::string first;
  std::getline(lines, first);
  auto j = nlohmann::json::parse(first);
  EXPECT_EQ(j["stage_id"], "only");
  EXPECT_EQ(j["text"], "line one");
}

TEST_F(CliE2ETest, ValidateAndSchemaWorkWithoutAScheduler) {
  const std::string cli = std::string(TOPOLAB_CLI_BIN) + " --scheduler 127.0.0.1:1 ";
  const fs::path f = root_ / "ok.yaml";
  WriteFile(f, kTwoStages);
  const std::string out = (root_ / "o").string();
  int st = std::system((cli + "validate " + f.string() + " >" + out).c_str());
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_NE(ReadFile(out).find("ok: experiment \"cli-e2e\", 2 stages"), std::string::npos) << ReadFile(out);
  st = std::system((cli + "validate --print " + f.string() + " >" + out).c_str());
  EXPECT_EQ(WEXITSTATUS(st), 0);
  auto j = nlohmann::json::parse(ReadFile(out));
  EXPECT_EQ(j["stages"][1]["needs"][0], "first");
  WriteFile(f, "name: x\nstages: [{id: a, kind: sleep, needs: [zz]}]\n");
  st = std::system((cli + "validate " + f.string() + " 2>" + out).c_str());
  EXPECT_EQ(WEXITSTATUS(st), 2);
  EXPECT_NE(ReadFile(out).find("stages[0].needs[0]: unknown stage \"zz\""), std::string::npos) << ReadFile(out);
  st = std::system((cli + "schema train >" + out).c_str());
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_NE(ReadFile(out).find("batch_size: int, default 64"), std::string::npos);
  EXPECT_EQ(WEXITSTATUS(std::system((cli + "schema nosuchkind 2>/dev/null").c_str())), 2);
}

}  // namespace
}  // namespace topolab
