// The child protocol parser: every event type, and that anything malformed
// degrades to a log line instead of breaking supervision.
#include "worker/daemon/protocol.h"

#include <cmath>

#include <gtest/gtest.h>

namespace topolab::worker {
namespace {

using Type = ChildEvent::Type;

TEST(ParseChildEventLineTest, ParsesLogEvent) {
  ChildEvent e = ParseChildEventLine(R"({"event":"log","line":"step 10 loss=0.5"})");
  EXPECT_EQ(e.type, Type::kLog);
  EXPECT_EQ(e.text, "step 10 loss=0.5");
}

TEST(ParseChildEventLineTest, ParsesProgressAndClampsIt) {
  EXPECT_DOUBLE_EQ(ParseChildEventLine(R"({"event":"progress","fraction":0.25})").fraction, 0.25);
  ChildEvent high = ParseChildEventLine(R"({"event":"progress","fraction":7})");
  EXPECT_EQ(high.type, Type::kProgress);
  EXPECT_DOUBLE_EQ(high.fraction, 1.0);
  EXPECT_DOUBLE_EQ(ParseChildEventLine(R"({"event":"progress","fraction":-1})").fraction, 0.0);
}

TEST(ParseChildEventLineTest, ParsesMetricsWithNullAsNaN) {
  ChildEvent e = ParseChildEventLine(
      R"({"event":"metrics","step":120,"values":{"loss":0.75,"acc":1,"bad":null,"skip":"x"}})");
  ASSERT_EQ(e.type, Type::kMetrics);
  EXPECT_EQ(e.step, 120);
  ASSERT_EQ(e.metrics.size(), 3u);
  EXPECT_DOUBLE_EQ(e.metrics["loss"], 0.75);
  EXPECT_DOUBLE_EQ(e.metrics["acc"], 1.0);
  EXPECT_TRUE(std::isnan(e.metrics["bad"]));
}

TEST(ParseChildEventLineTest, ParsesArtifactAndDone) {
  ChildEvent a = ParseChildEventLine(R"({"event":"artifact","path":"checkpoints/step_000100.pt"})");
  EXPECT_EQ(a.type, Type::kArtifact);
  EXPECT_EQ(a.text, "checkpoints/step_000100.pt");
  ChildEvent ok = ParseChildEventLine(R"({"event":"done","ok":true,"code":"OK","message":""})");
  EXPECT_EQ(ok.type, Type::kDone);
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.code, "OK");
  ChildEvent bad = ParseChildEventLine(R"({"event":"done","ok":false,"code":"INTERNAL","message":"boom"})");
  EXPECT_EQ(bad.type, Type::kDone);
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.code, "INTERNAL");
  EXPECT_EQ(bad.text, "boom");
}

TEST(ParseChildEventLineTest, MalformedLinesBecomeRawLogLines) {
  for (const char* line : {"plain text from a library", "{not json", R"({"event":"teleport"})",
                           R"({"event":"done"})", R"({"event":"progress","fraction":"half"})",
                           R"({"event":"artifact","path":3})", R"([1,2,3])", R"({"line":"x"})", ""}) {
    ChildEvent e = ParseChildEventLine(line);
    EXPECT_EQ(e.type, Type::kLog) << line;
    EXPECT_EQ(e.text, line);
  }
}

TEST(LineSplitterTest, SplitsAcrossChunksAndStripsCarriageReturn) {
  LineSplitter s;
  EXPECT_TRUE(s.Feed("hel").empty());
  std::vector<std::string> lines = s.Feed("lo\r\nwor");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "hello");
  lines = s.Feed("ld\n\nlast");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "world");
  EXPECT_EQ(lines[1], "");
  EXPECT_EQ(s.Finish(), "last");
  EXPECT_EQ(s.Finish(), "");
}

TEST(LineSplitterTest, CutsOverlongLines) {
  LineSplitter s(4);
  std::vector<std::string> lines = s.Feed("abcdefghij");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "abcd");
  EXPECT_EQ(lines[1], "efgh");
  EXPECT_EQ(s.Finish(), "ij");
}

}  // namespace
}  // namespace topolab::worker
