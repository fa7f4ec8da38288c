// Child supervision with real processes (/bin/sh children): clean exits,
// crashes by signal, stderr capture, cancel with SIGTERM, and SIGKILL after
// the grace period for a child that ignores SIGTERM. These tests wait for
// real processes, but never for longer than the behaviour under test needs.
#include "worker/daemon/child_supervisor.h"

#include <signal.h>

#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace topolab::worker {
namespace {

using std::chrono::milliseconds;

struct Collected {
  std::vector<ChildEvent> events;
  std::vector<std::string> stderr_lines;
};

ChildResult RunShell(const std::string& script, Collected* got, ChildSupervisor** out = nullptr,
                     milliseconds grace = milliseconds(10000)) {
  ChildOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.grace = grace;
  ChildSupervisor child(o);
  EXPECT_OK(child.Start());
  if (out != nullptr) *out = &child;
  return child.Wait([&](const ChildEvent& e) { got->events.push_back(e); },
                    [&](const std::string& l) { got->stderr_lines.push_back(l); });
}

TEST(ChildSupervisorTest, CleanExitWithDoneEvent) {
  Collected got;
  ChildResult r = RunShell(
      R"(echo '{"event":"log","line":"hello"}'; echo 'not json';)"
      R"( echo '{"event":"progress","fraction":0.5}'; echo '{"event":"done","ok":true,"code":"OK","message":""}')",
      &got);
  EXPECT_TRUE(r.exit.exited);
  EXPECT_EQ(r.exit.code, 0);
  EXPECT_TRUE(r.saw_done);
  EXPECT_TRUE(r.done.ok);
  EXPECT_FALSE(r.stop_requested);
  ASSERT_EQ(got.events.size(), 4u);
  EXPECT_EQ(got.events[0].text, "hello");
  EXPECT_EQ(got.events[1].type, ChildEvent::Type::kLog);
  EXPECT_EQ(got.events[1].text, "not json");
  EXPECT_EQ(got.events[2].type, ChildEvent::Type::kProgress);
  EXPECT_EQ(DescribeExit(r.exit), "exited with code 0");
}

TEST(ChildSupervisorTest, NonZeroExitAndStderrTail) {
  Collected got;
  ChildResult r = RunShell("echo first >&2; echo 'out of cheese' >&2; exit 3", &got);
  EXPECT_TRUE(r.exit.exited);
  EXPECT_EQ(r.exit.code, 3);
  EXPECT_FALSE(r.saw_done);
  EXPECT_EQ(r.stderr_tail, "first\nout of cheese\n");
  ASSERT_EQ(got.stderr_lines.size(), 2u);
  EXPECT_EQ(got.stderr_lines[1], "out of cheese");
  EXPECT_EQ(DescribeExit(r.exit), "exited with code 3");
}

TEST(ChildSupervisorTest, StderrTailKeepsOnlyTheEnd) {
  ChildOptions o;
  o.argv = {"/bin/sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line$i >&2; i=$((i+1)); done"};
  o.stderr_tail_bytes = 16;
  ChildSupervisor child(o);
  ASSERT_OK(child.Start());
  ChildResult r = child.Wait(nullptr, nullptr);
  EXPECT_EQ(r.stderr_tail.size(), 16u);
  EXPECT_EQ(r.stderr_tail.substr(r.stderr_tail.size() - 8), "line199\n");
}

TEST(ChildSupervisorTest, CrashBySegvIsReported) {
  Collected got;
  ChildResult r = RunShell("kill -SEGV $$", &got);
  EXPECT_FALSE(r.exit.exited);
  EXPECT_EQ(r.exit.signal, SIGSEGV);
  EXPECT_EQ(DescribeExit(r.exit), "killed by signal 11 (SIGSEGV)");
}

TEST(ChildSupervisorTest, SigkillSuggestsOutOfMemory) {
  Collected got;
  ChildResult r = RunShell("kill -KILL $$", &got);
  EXPECT_FALSE(r.exit.exited);
  EXPECT_EQ(r.exit.signal, SIGKILL);
  EXPECT_EQ(DescribeExit(r.exit), "killed by signal 9 (SIGKILL; possibly out of memory)");
  EXPECT_FALSE(r.killed_after_grace);
}

TEST(ChildSupervisorTest, StopSendsSigtermWhichTheChildHonours) {
  ChildOptions o;
  // The child traps SIGTERM, says so and exits 7: the grace period is long,
  // so only SIGTERM can have ended it.
  o.argv = {"/bin/sh", "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"};
  o.grace = milliseconds(60000);
  ChildSupervisor child(o);
  ASSERT_OK(child.Start());
  std::vector<std::string> lines;
  ChildResult r = child.Wait(
      [&](const ChildEvent& e) {
        lines.push_back(e.text);
        if (e.text == "ready") child.RequestStop();
      },
      nullptr);
  EXPECT_TRUE(r.exit.exited);
  EXPECT_EQ(r.exit.code, 7);
  EXPECT_TRUE(r.stop_requested);
  EXPECT_FALSE(r.killed_after_grace);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "got-term"), lines.end());
}

TEST(ChildSupervisorTest, SigkillAfterGraceWhenSigtermIsIgnored) {
  ChildOptions o;
  o.argv = {"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"};
  o.grace = milliseconds(300);
  ChildSupervisor child(o);
  ASSERT_OK(child.Start());
  auto start = std::chrono::steady_clock::now();
  ChildResult r = child.Wait(
      [&](const ChildEvent& e) {
        if (e.text == "ready") child.RequestStop();
      },
      nullptr);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.exit.exited);
  EXPECT_EQ(r.exit.signal, SIGKILL);
  EXPECT_TRUE(r.killed_after_grace);
  EXPECT_GE(took, milliseconds(300));  // not before the grace period
}

TEST(ChildSupervisorTest, StopReachesTheWholeProcessGroup) {
  // The grandchild holds the stdout pipe; if it survived, Wait() would only
  // return after its 60 s sleep. It must be gone with the group.
  ChildOptions o;
  o.argv = {"/bin/sh", "-c", "sleep 60 & echo ready; wait"};
  o.grace = milliseconds(5000);
  ChildSupervisor child(o);
  ASSERT_OK(child.Start());
  auto start = std::chrono::steady_clock::now();
  ChildResult r = child.Wait(
      [&](const ChildEvent& e) {
        if (e.text == "ready") child.RequestStop();
      },
      nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_FALSE(r.exit.exited);
  EXPECT_EQ(r.exit.signal, SIGTERM);
}

TEST(ChildSupervisorTest, StartFailsForMissingExecutable) {
  ChildOptions o;
  o.argv = {"/nonexistent/topolab-worker", "run-job"};
  ChildSupervisor child(o);
  absl::Status s = child.Start();
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_NE(s.message().find("/nonexistent/topolab-worker"), std::string_view::npos);
}

}  // namespace
}  // namespace topolab::worker
