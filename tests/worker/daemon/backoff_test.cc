// Exponential backoff: growth, cap, jitter bounds, reset.
#include "worker/daemon/backoff.h"

#include <gtest/gtest.h>

namespace topolab::worker {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesUpToTheCapWithoutJitter) {
  BackoffOptions o;
  o.initial = milliseconds(100);
  o.max = milliseconds(1000);
  o.multiplier = 2;
  o.jitter = 0;
  Backoff b(o);
  EXPECT_EQ(b.NextDelay(), milliseconds(100));
  EXPECT_EQ(b.NextDelay(), milliseconds(200));
  EXPECT_EQ(b.NextDelay(), milliseconds(400));
  EXPECT_EQ(b.NextDelay(), milliseconds(800));
  EXPECT_EQ(b.NextDelay(), milliseconds(1000));
  EXPECT_EQ(b.NextDelay(), milliseconds(1000));
  EXPECT_EQ(b.attempts(), 6);
}

TEST(BackoffTest, ResetStartsOver) {
  BackoffOptions o;
  o.jitter = 0;
  Backoff b(o);
  b.NextDelay();
  b.NextDelay();
  b.Reset();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_EQ(b.NextDelay(), o.initial);
}

TEST(BackoffTest, JitterStaysWithinBoundsAndIsSeeded) {
  BackoffOptions o;
  o.initial = milliseconds(1000);
  o.max = milliseconds(1000);
  o.jitter = 0.5;
  Backoff a(o, 42), b(o, 42);
  bool varied = false;
  milliseconds first = a.NextDelay();
  EXPECT_EQ(first, b.NextDelay());  // same seed, same delays
  for (int i = 0; i < 100; ++i) {
    milliseconds d = a.NextDelay();
    EXPECT_GE(d.count(), 500);
    EXPECT_LE(d.count(), 1000);
    varied |= d != first;
  }
  EXPECT_TRUE(varied);
}

TEST(BackoffTest, LongOutagesDoNotOverflow) {
  BackoffOptions o;
  o.jitter = 0;
  o.max = milliseconds(5000);
  Backoff b(o);
  for (int i = 0; i < 10000; ++i) b.NextDelay();
  EXPECT_EQ(b.NextDelay(), milliseconds(5000));
}

}  // namespace
}  // namespace topolab::worker
