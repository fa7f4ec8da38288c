// Harness of the end-to-end tests: starts the real binaries (scheduler,
// workers, CLI) on loopback with temporary folders, and reads results back
// over gRPC. Process output goes to files in the test's temp dir, printed
// when a test fails; everything is killed and removed at the end.
#ifndef TOPOLAB_TESTS_INTEGRATION_HARNESS_H_
#define TOPOLAB_TESTS_INTEGRATION_HARNESS_H_
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include "proto/grpc_status.h"
#include "proto/sha256.h"
#include "tests/test_util.h"
#include "topolab.grpc.pb.h"

extern char** environ;

namespace topolab {
namespace itest {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

inline std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// A process of ours: own process group, stdout+stderr appended to `log`.
struct Proc {
  pid_t pid = -1;
  fs::path log;
};

inline Proc Spawn(const std::vector<std::string>& argv, const fs::path& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Proc p;
  p.log = log;
  int rc = posix_spawn(&p.pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  return p;
}

// Waits until pred() or the timeout; polls every 100 ms.
inline bool WaitUntil(const std::function<bool()>& pred, std::chrono::steady_clock::duration timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return pred();
}

// Runs a command, returns (exit code, stdout+stderr).
inline std::pair<int, std::string> RunCommand(const std::string& cmd) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/topolab_integration_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    data_dir_ = root_ / "data";
  }
  void TearDown() override {
    for (Proc& p : procs_) {
      if (p.pid > 0) {
        kill(-p.pid, SIGKILL);
        waitpid(p.pid, nullptr, 0);
      }
    }
    if (HasFailure()) {
      for (const fs::path& log : logs_) {
        std::string text = ReadFile(log);
        if (text.size() > 20000) text = "..." + text.substr(text.size() - 20000);
        std::cerr << "==== " << log << "\n" << text << "\n";
      }
    } else {
      std::error_code ec;
      fs::remove_all(root_, ec);
    }
  }

  // Starts the scheduler on `listen`; returns its process and sets address_.
  Proc StartScheduler(const std::string& listen, const std::vector<std::string>& extra = {}) {
    fs::path log = root_ / ("scheduler" + std::to_string(procs_.size()) + ".log");
    logs_.push_back(log);
    std::vector<std::string> argv = {TOPOLAB_SCHEDULER_BIN, "--listen", listen, "--data-dir",
                                     data_dir_.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Proc p = Spawn(argv, log);
    procs_.push_back(p);
    std::smatch m;
    std::regex re("listening on (\\S+)");
    std::string text;
    EXPECT_TRUE(WaitUntil([&] {
      text = ReadFile(log);
      return std::regex_search(text, m, re);
    }, seconds(60))) << text;
    address_ = m.size() > 1 ? m[1].str() : "";
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::Scheduler::NewStub(channel_);
    return p;
  }

  Proc StartWorker(const std::string& name, const std::vector<std::string>& extra = {}) {
    fs::path log = root_ / (name + ".log");
    logs_.push_back(log);
    std::vector<std::string> argv = {TOPOLAB_WORKER_BIN, "--scheduler", address_, "--work-dir",
                                     (root_ / name).string(), "--threads", "2",
                                     "--stop-grace-ms", "3000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Proc p = Spawn(argv, log);
    procs_.push_back(p);
    return p;
  }

  void Kill9(Proc& p) {
    kill(p.pid, SIGKILL);  // the process only, as the OOM killer or a crash would
    waitpid(p.pid, nullptr, 0);
    for (Proc& q : procs_) {
      if (q.pid == p.pid) q.pid = -1;
    }
    p.pid = -1;
  }

  std::pair<int, std::string> Cli(const std::string& args) {
    return RunCommand(std::string(TOPOLAB_CLI_BIN) + " --scheduler " + address_ + " " + args);
  }

  // Submits a YAML document through the CLI; returns the experiment id.
  std::string Submit(const std::string& name, const std::string& yaml) {
    fs::path file = root_ / (name + ".yaml");
    WriteFile(file, yaml);
    auto [rc, out] = Cli("submit " + file.string());
    EXPECT_EQ(rc, 0) << out;
    std::string id = out;
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    size_t nl = id.find_last_of('\n');
    if (nl != std::string::npos) id = id.substr(nl + 1);
    EXPECT_FALSE(id.empty()) << out;
    return id;
  }

  absl::StatusOr<v1::Experiment> Get(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
    v1::GetExperimentRequest req;
    req.set_experiment_id(id);
    v1::Experiment e;
    absl::Status s = FromGrpcStatus(stub_->GetExperiment(&ctx, req, &e));
    if (!s.ok()) return s;
    return e;
  }

  bool WaitForState(const std::string& id, v1::ExperimentState state, std::chrono::seconds timeout) {
    return WaitUntil([&] {
      auto e = Get(id);
      return e.ok() && e->state() == state;
    }, timeout);
  }

  // Waits until the experiment succeeded, failed or was cancelled (or the
  // timeout); returns its last state.
  v1::ExperimentState WaitForEnd(const std::string& id, std::chrono::seconds timeout) {
    v1::ExperimentState state = v1::EXPERIMENT_STATE_UNSPECIFIED;
    WaitUntil([&] {
      auto e = Get(id);
      if (e.ok()) state = e->state();
      return state == v1::EXPERIMENT_SUCCEEDED || state == v1::EXPERIMENT_FAILED ||
             state == v1::EXPERIMENT_CANCELLED;
    }, timeout);
    return state;
  }

  std::vector<v1::Artifact> Artifacts(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
    v1::ListArtifactsRequest req;
    req.set_experiment_id(id);
    v1::ListArtifactsResponse resp;
    grpc::Status s = stub_->ListArtifacts(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.artifacts().begin(), resp.artifacts().end()};
  }

  std::vector<std::string> Logs(const std::string& id, const std::string& stage) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    v1::StreamLogsRequest req;
    req.set_experiment_id(id);
    req.set_stage_id(stage);
    auto reader = stub_->StreamLogs(&ctx, req);
    std::vector<std::string> lines;
    v1::LogLine line;
    while (reader->Read(&line)) lines.push_back(line.text());
    reader->Finish();
    return lines;
  }

  static int CountContaining(const std::vector<std::string>& lines, const std::string& needle) {
    int n = 0;
    for (const std::string& l : lines) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

  fs::path root_;
  fs::path data_dir_;
  std::vector<Proc> procs_;
  std::vector<fs::path> logs_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
};

}  // namespace itest
}  // namespace topolab

#endif  // TOPOLAB_TESTS_INTEGRATION_HARNESS_H_
