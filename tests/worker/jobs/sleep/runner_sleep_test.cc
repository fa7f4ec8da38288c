// RunJob with the `sleep` kind, in-process: progress and checkpoints,
// resume from a checkpoint, cancel, requested failure, spec errors; and
// the JsonLinesReporter's lines read back by the daemon's parser.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "worker/daemon/protocol.h"
#include "worker/jobs/runner.h"

namespace topolab::worker {
namespace {

namespace fs = std::filesystem;

class RecordingReporter : public JobReporter {
 public:
  void Log(const std::string& line) override { logs.push_back(line); }
  void Progress(double f) override { progress.push_back(f); }
  void Metrics(int64_t step, const std::map<std::string, double>&) override { steps.push_back(step); }
  void ArtifactReady(const std::string& p) override { artifacts.push_back(p); }
  bool CancelRequested() override { return cancel_after_progress >= 0 &&
                                           static_cast<int>(progress.size()) >= cancel_after_progress; }
  std::vector<std::string> logs, artifacts;
  std::vector<double> progress;
  std::vector<int64_t> steps;
  int cancel_after_progress = -1;
  bool LogContains(const std::string& s) const {
    for (const auto& l : logs) {
      if (l.find(s) != std::string::npos) return true;
    }
    return false;
  }
};

class RunnerSleepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/topolab_runner_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  RunJobOptions Options(const std::string& spec_text) {
    fs::path spec = root_ / "spec.yaml";
    std::ofstream(spec) << spec_text;
    RunJobOptions o;
    o.spec_path = spec;
    o.out_dir = root_ / "out";
    o.resume_dir = root_ / "resume";
    o.threads = 1;
    return o;
  }
  fs::path root_;
};

TEST_F(RunnerSleepTest, RunsToCompletionWithProgressAndCheckpoints) {
  RecordingReporter r;
  ASSERT_OK(RunJob(Options("kind: sleep\nseconds: 0.05\nsteps: 5\n"), r));
  ASSERT_EQ(r.progress.size(), 5u);
  for (size_t i = 1; i < r.progress.size(); ++i) EXPECT_GT(r.progress[i], r.progress[i - 1]);
  EXPECT_DOUBLE_EQ(r.progress.back(), 1.0);
  EXPECT_EQ(r.steps, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(r.artifacts.back(), "result.json");
  EXPECT_TRUE(fs::exists(root_ / "out/result.json"));
  std::ifstream state(root_ / "out/checkpoints/sleep_state.json");
  std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"step\":5"), std::string::npos);
}

TEST_F(RunnerSleepTest, ResumesFromTheCheckpointInResumeDir) {
  fs::create_directories(root_ / "resume/checkpoints");
  std::ofstream(root_ / "resume/checkpoints/sleep_state.json") << "{\"step\": 3}";
  RecordingReporter r;
  RunJobOptions o = Options("kind: sleep\nseconds: 0.05\nsteps: 5\n");
  o.attempt = 2;
  ASSERT_OK(RunJob(o, r));
  EXPECT_TRUE(r.LogContains("resumed from step 3"));
  EXPECT_EQ(r.steps, (std::vector<int64_t>{4, 5}));
  std::ifstream result(root_ / "out/result.json");
  std::string text((std::istreambuf_iterator<char>(result)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"resumed_from\":3"), std::string::npos) << text;
  EXPECT_NE(text.find("\"attempt\":2"), std::string::npos) << text;
}

TEST_F(RunnerSleepTest, CancelStopsTheJob) {
  RecordingReporter r;
  r.cancel_after_progress = 2;
  absl::Status s = RunJob(Options("kind: sleep\nseconds: 100\nsteps: 10000\n"), r);
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_FALSE(fs::exists(root_ / "out/result.json"));
}

TEST_F(RunnerSleepTest, FailTrueFailsWithTheMessage) {
  RecordingReporter r;
  absl::Status s = RunJob(Options("kind: sleep\nseconds: 0\nfail: true\nmessage: planned failure\n"), r);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "planned failure");
}

TEST_F(RunnerSleepTest, SpecErrorsNameTheFieldAndFile) {
  RecordingReporter r;
  absl::Status s = RunJob(Options("kind: sleep\nseconds: -1\n"), r);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("seconds"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("spec.yaml"), std::string_view::npos) << s;

  RunJobOptions missing = Options("kind: sleep\n");
  missing.spec_path = root_ / "nope.yaml";
  EXPECT_TRUE(absl::IsNotFound(RunJob(missing, r)));

  absl::Status unknown = RunJob(Options("kind: teleport\n"), r);
  EXPECT_TRUE(absl::IsInvalidArgument(unknown)) << unknown;
}

TEST_F(RunnerSleepTest, JsonLinesReporterOutputParsesBack) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  JsonLinesReporter rep(f);
  rep.Log("hello \"world\"\nsecond line");
  rep.Progress(0.5);
  rep.Metrics(7, {{"loss", 0.25}});
  rep.ArtifactReady("checkpoints/a.pt");
  rep.Done(absl::InternalError("LibTorch error: bad shape"));
  std::rewind(f);
  std::vector<ChildEvent> events;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), f) != nullptr) {
    std::string line(buf);
    ASSERT_EQ(line.back(), '\n');  // one event per line, even with '\n' in a log
    line.pop_back();
    events.push_back(ParseChildEventLine(line));
  }
  std::fclose(f);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, ChildEvent::Type::kLog);
  EXPECT_EQ(events[0].text, "hello \"world\"\nsecond line");
  EXPECT_DOUBLE_EQ(events[1].fraction, 0.5);
  EXPECT_EQ(events[2].step, 7);
  EXPECT_DOUBLE_EQ(events[2].metrics.at("loss"), 0.25);
  EXPECT_EQ(events[3].text, "checkpoints/a.pt");
  EXPECT_EQ(events[4].type, ChildEvent::Type::kDone);
  EXPECT_FALSE(events[4].ok);
  EXPECT_EQ(events[4].code, "INTERNAL");
  EXPECT_EQ(events[4].text, "LibTorch error: bad shape");
}

TEST_F(RunnerSleepTest, LogLinesAreAlsoWrittenToTheJobLogArtifact) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    JsonLinesReporter rep(f);
    rep.TeeLogTo(root_ / "out" / "job.log");
    rep.Log("first");
    rep.Progress(0.5);  // not a log line: stays out of job.log
    rep.Log("second");
  }
  std::fclose(f);
  std::ifstream in(root_ / "out" / "job.log");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "first\nsecond\n");
}

}  // namespace
}  // namespace topolab::worker
