// Tests of the CLI's rendering and pure helpers (client/format.h).
#include "client/format.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace topolab::client {
namespace {

TEST(GlobTest, StarStaysInOneSegment) {
  EXPECT_TRUE(GlobMatch("*.json", "metrics.json"));
  EXPECT_FALSE(GlobMatch("*.json", "maps/metrics.json"));
  EXPECT_TRUE(GlobMatch("checkpoints/*.pt", "checkpoints/step_000100.pt"));
  EXPECT_FALSE(GlobMatch("checkpoints/*.pt", "checkpoints/a/b.pt"));
  EXPECT_TRUE(GlobMatch("*", "log.txt"));
  EXPECT_TRUE(GlobMatch("step_*_final.pt", "step_12_final.pt"));
  EXPECT_FALSE(GlobMatch("step_*_final.pt", "step_12_final.ptx"));
}

TEST(GlobTest, DoubleStarCrossesSegments) {
  EXPECT_TRUE(GlobMatch("**/*.png", "maps/layer1/orientation.png"));
  EXPECT_TRUE(GlobMatch("**/*.png", "a.png"));
  EXPECT_TRUE(GlobMatch("**", "x/y/z"));
  EXPECT_TRUE(GlobMatch("maps/**", "maps/a/b.png"));
  EXPECT_FALSE(GlobMatch("maps/**/*.npy", "maps/a/b.png"));
}

TEST(GlobTest, QuestionMarkAndSets) {
  EXPECT_TRUE(GlobMatch("layer?.npy", "layer4.npy"));
  EXPECT_FALSE(GlobMatch("layer?.npy", "layer10.npy"));
  EXPECT_TRUE(GlobMatch("layer[1-3].npy", "layer2.npy"));
  EXPECT_FALSE(GlobMatch("layer[1-3].npy", "layer4.npy"));
  EXPECT_TRUE(GlobMatch("layer[!1-3].npy", "layer4.npy"));
  EXPECT_TRUE(GlobMatch("[ab]x", "bx"));
  EXPECT_FALSE(GlobMatch("[ab]x", "cx"));
  EXPECT_TRUE(GlobMatch("exact/name.txt", "exact/name.txt"));
  EXPECT_FALSE(GlobMatch("exact/name.txt", "exact/name.txt2"));
}

TEST(GlobTest, ArtifactSelectedByNameOrStageAndName) {
  v1::Artifact a;
  a.set_stage_id("train");
  a.set_name("checkpoints/final.pt");
  EXPECT_TRUE(ArtifactSelected("", a));
  EXPECT_TRUE(ArtifactSelected("checkpoints/*", a));
  EXPECT_TRUE(ArtifactSelected("train/checkpoints/*.pt", a));
  EXPECT_TRUE(ArtifactSelected("train/**", a));
  EXPECT_FALSE(ArtifactSelected("extract/**", a));
  EXPECT_FALSE(ArtifactSelected("*.pt", a));
}

TEST(SafePathTest, JoinsStageAndName) {
  auto p = SafeArtifactPath("results/exp1/", "train", "checkpoints/final.pt");
  ASSERT_OK(p);
  EXPECT_EQ(*p, "results/exp1/train/checkpoints/final.pt");
}

TEST(SafePathTest, RefusesNamesThatEscape) {
  for (const char* bad : {"../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", "..", "a\\b", "a\nb", ""}) {
    auto p = SafeArtifactPath("out", "train", bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(p.status().message()).find("refusing unsafe name"), std::string::npos);
  }
  EXPECT_FALSE(SafeArtifactPath("out", "..", "x").ok());
  EXPECT_FALSE(SafeArtifactPath("out", "a/b", "x").ok());
  EXPECT_FALSE(SafeArtifactPath("out", "", "x").ok());
  EXPECT_FALSE(SafeArtifactPath("out", "t", std::string(256, 'a')).ok());
  EXPECT_OK(SafeArtifactPath("out", "t", std::string(255, 'a')));
  EXPECT_OK(SafeArtifactPath("out", "t", "..hidden/x..y"));  // dots inside a name are fine
}

TEST(PullPlanTest, ResumesPartialFiles) {
  EXPECT_EQ(PlanPull(-1, 100), PullAction::kDownload);
  EXPECT_EQ(PlanPull(0, 100), PullAction::kDownload);
  EXPECT_EQ(PlanPull(40, 100), PullAction::kResume);
  EXPECT_EQ(PlanPull(100, 100), PullAction::kVerifyExisting);
  EXPECT_EQ(PlanPull(150, 100), PullAction::kDownload);
  EXPECT_EQ(PlanPull(-1, 0), PullAction::kDownload);
}

TEST(StatusTest, ExitCodes) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::DataLossError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("x")), 1);
}

TEST(StatusTest, ErrorLineIsOneLine) {
  EXPECT_EQ(ErrorLine(absl::UnavailableError("failed to connect to all addresses; last error: ..."), "h:1"),
            "cannot reach scheduler at h:1");
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError("a\nb"), "h:1"), "a b");
  EXPECT_EQ(ErrorLine(absl::NotFoundError(""), "h:1"), "NOT_FOUND");
}

TEST(StateTest, NamesAndParsing) {
  EXPECT_EQ(JobStateName(v1::JOB_RUNNING), "RUNNING");
  EXPECT_EQ(ExperimentStateName(v1::EXPERIMENT_CANCELLED), "CANCELLED");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_UNSPECIFIED), "UNKNOWN");
  auto s = ParseExperimentState("running");
  ASSERT_OK(s);
  EXPECT_EQ(*s, v1::EXPERIMENT_RUNNING);
  EXPECT_EQ(*ParseExperimentState("FAILED"), v1::EXPERIMENT_FAILED);
  EXPECT_EQ(*ParseExperimentState("experiment_succeeded"), v1::EXPERIMENT_SUCCEEDED);
  auto bad = ParseExperimentState("done");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(bad.status().message()).rfind("--state: unknown state \"done\"", 0), 0u);
  EXPECT_FALSE(ParseExperimentState("state_unspecified").ok());
  EXPECT_TRUE(IsTerminal(v1::EXPERIMENT_FAILED));
  EXPECT_FALSE(IsTerminal(v1::EXPERIMENT_RUNNING));
  EXPECT_TRUE(IsTerminal(v1::JOB_CANCELLED));
  EXPECT_FALSE(IsTerminal(v1::JOB_BLOCKED));
}

TEST(NumberFormatTest, BytesDurationsMetrics) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(50 * 1024 * 1024), "50 MiB");
  EXPECT_EQ(FormatDuration(45'000), "45s");
  EXPECT_EQ(FormatDuration(192'000), "3m12s");
  EXPECT_EQ(FormatDuration(2 * 3600'000 + 5 * 60'000), "2h05m");
  EXPECT_EQ(FormatDuration(3 * 86400'000LL + 4 * 3600'000), "3d04h");
  EXPECT_EQ(FormatDuration(-5), "0s");
  EXPECT_EQ(FormatAge(0, 1000), "-");
  EXPECT_EQ(FormatAge(1000, 61'000), "1m00s ago");
  EXPECT_EQ(FormatMetric(0.53123), "0.5312");
  EXPECT_EQ(FormatMetric(0), "0");
  EXPECT_EQ(FormatMetric(123456), "1.23e+05");
  EXPECT_EQ(FormatMetric(12.5), "12.5");
}

TEST(NumberFormatTest, MetricsSortedAndCapped) {
  google::protobuf::Map<std::string, double> m;
  m["loss"] = 0.5;
  m["acc"] = 0.75;
  m["img_per_s"] = 101;
  EXPECT_EQ(FormatMetrics(m, 10), "acc=0.75 img_per_s=101 loss=0.5");
  EXPECT_EQ(FormatMetrics(m, 2), "acc=0.75 img_per_s=101 ...");
}

TEST(TableTest, AlignsColumns) {
  EXPECT_EQ(RenderTable({"A", "BB", "C"}, {{"xxx", "y", "z"}, {"1", "22222", ""}}),
            "A    BB     C\n"
            "xxx  y      z\n"
            "1    22222\n");
}

TEST(ProgressTest, Bar) {
  EXPECT_EQ(ProgressBar(0, 10), "[..........]");
  EXPECT_EQ(ProgressBar(0.5, 10), "[#####.....]");
  EXPECT_EQ(ProgressBar(1, 10), "[##########]");
  EXPECT_EQ(ProgressBar(1.7, 4), "[####]");
  EXPECT_EQ(ProgressBar(-1, 4), "[....]");
  EXPECT_EQ(ProgressBar(0.3, 10), "[###.......]");
}

v1::Experiment SampleExperiment() {
  v1::Experiment e;
  e.set_id("exp-1");
  e.set_name("tdann");
  e.set_owner("alice");
  e.set_state(v1::EXPERIMENT_RUNNING);
  e.set_created_at_ms(1'000'000);
  auto* a = e.add_jobs();
  a->set_stage_id("pretrain");
  a->set_kind("train");
  a->set_state(v1::JOB_SUCCEEDED);
  a->set_attempt(1);
  a->set_max_attempts(3);
  a->set_progress(1);
  auto* b = e.add_jobs();
  b->set_stage_id("swap");
  b->set_kind("swapopt");
  b->set_state(v1::JOB_RUNNING);
  b->set_attempt(2);
  b->set_max_attempts(3);
  b->set_progress(0.25);
  b->add_needs("pretrain");
  (*b->mutable_metrics())["cost"] = 0.125;
  b->set_started_at_ms(1'030'000);
  return e;
}

TEST(ProgressTest, WatchLines) {
  auto lines = WatchLines(SampleExperiment(), 1'090'000);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "exp-1  tdann  RUNNING  1m30s");
  EXPECT_EQ(lines[1], "  pretrain  SUCCEEDED  [########################] 100%");
  EXPECT_EQ(lines[2], "  swap      RUNNING    [######..................]  25%  attempt 2/3  cost=0.125");
}

TEST(ProgressTest, FailedJobShowsItsMessage) {
  v1::Job j;
  j.set_stage_id("t");
  j.set_state(v1::JOB_FAILED);
  j.set_attempt(3);
  j.set_max_attempts(3);
  j.set_progress(0.5);
  j.set_message("child killed by signal 9");
  EXPECT_EQ(JobProgressLine(j, 1),
            "t  FAILED     [############............]  50%  attempt 3/3  (child killed by signal 9)");
}

TEST(TableTest, ExperimentDetailListsJobs) {
  const std::string d = ExperimentDetail(SampleExperiment(), 1'090'000);
  EXPECT_NE(d.find("experiment  exp-1\n"), std::string::npos) << d;
  EXPECT_NE(d.find("state       RUNNING\n"), std::string::npos) << d;
  EXPECT_NE(d.find("STAGE     KIND     STATE      ATTEMPT  PROGRESS  RUNTIME  NEEDS     METRICS     MESSAGE"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("swap      swapopt  RUNNING    2/3      25%       1m00s    pretrain  cost=0.125"),
            std::string::npos)
      << d;
}

TEST(TableTest, ExperimentsAndWorkers) {
  const std::string t = ExperimentsTable({SampleExperiment()}, 1'090'000);
  EXPECT_EQ(t,
            "ID     NAME   OWNER  STATE    DONE  PRIORITY  CREATED\n"
            "exp-1  tdann  alice  RUNNING  1/2   0         1m30s ago\n");
  v1::WorkerInfo w;
  w.set_id("w1");
  w.set_host("gpu01");
  auto* d = w.add_devices();
  d->set_type("cuda");
  d->set_memory_bytes(80LL << 30);
  w.add_job_kinds("train");
  w.add_job_kinds("sleep");
  w.set_max_concurrent_jobs(2);
  w.add_running_job_ids("j1");
  w.set_alive(true);
  w.set_last_seen_ms(1'085'000);
  EXPECT_EQ(WorkersTable({w}, 1'090'000),
            "ID  HOST   DEVICES       KINDS        JOBS  ALIVE  LAST SEEN\n"
            "w1  gpu01  cuda(80 GiB)  train,sleep  1/2   yes    5s ago\n");
}

TEST(JsonTest, ProtoToJsonUsesNumbersEnumNamesAndMaps) {
  auto j = ToJson(SampleExperiment());
  EXPECT_EQ(j["id"], "exp-1");
  EXPECT_EQ(j["state"], "EXPERIMENT_RUNNING");
  EXPECT_EQ(j["created_at_ms"], 1'000'000);
  EXPECT_TRUE(j["created_at_ms"].is_number_integer());
  EXPECT_EQ(j["finished_at_ms"], 0) << "every field present";
  ASSERT_EQ(j["jobs"].size(), 2u);
  EXPECT_EQ(j["jobs"][1]["needs"], nlohmann::ordered_json::array({"pretrain"}));
  EXPECT_DOUBLE_EQ(j["jobs"][1]["metrics"]["cost"].get<double>(), 0.125);
  EXPECT_EQ(j["jobs"][1]["resources"]["device"], "");
  v1::ArtifactChunk c;
  c.set_data("abc");
  EXPECT_EQ(ToJson(c)["data"], "<3 bytes>");
}

TEST(CompareTest, FlattenJson) {
  auto f = FlattenJson(nlohmann::json::parse(R"({"a": {"b": 1, "c": [true, "x"]}, "d": [], "e": "s"})"));
  EXPECT_EQ(f, (std::map<std::string, std::string>{
                   {"a.b", "1"}, {"a.c[0]", "true"}, {"a.c[1]", "x"}, {"d", "[]"}, {"e", "s"}}));
}

TEST(CompareTest, ShowsOnlyDifferingSettingsAndAllMetrics) {
  v1::Experiment a, b;
  a.set_id("e1");
  a.set_name("alpha0");
  a.set_config_json(R"({"name":"alpha0","owner":"x","seed":1,"stages":[{"id":"t","spatial_weight":0.0,"epochs":2}]})");
  b.set_id("e2");
  b.set_name("alpha25");
  b.set_config_json(R"({"name":"alpha25","owner":"y","seed":1,"stages":[{"id":"t","spatial_weight":0.25,"epochs":2}]})");
  auto* ja = a.add_jobs();
  ja->set_stage_id("t");
  (*ja->mutable_metrics())["loss"] = 0.5;
  auto* jb = b.add_jobs();
  jb->set_stage_id("t");
  (*jb->mutable_metrics())["loss"] = 0.75;
  (*jb->mutable_metrics())["spatial_loss"] = 0.125;
  EXPECT_EQ(CompareTable({a, b}),
            "SETTING                  e1       e2\n"
            "name                     alpha0   alpha25\n"
            "state                    UNKNOWN  UNKNOWN\n"
            "stages.t.spatial_weight  0.0      0.25\n"
            "\n"
            "METRIC          e1   e2\n"
            "t.loss          0.5  0.75\n"
            "t.spatial_loss  -    0.125\n");
}

}  // namespace
}  // namespace topolab::client
