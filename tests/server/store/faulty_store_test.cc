// FaultyStore: injected errors, with and without the base call taking effect.
#include "server/store/faulty_store.h"

#include <gtest/gtest.h>

#include "server/store/memory_store.h"
#include "tests/server/store/store_test_util.h"
#include "tests/test_util.h"

namespace topolab::server {
namespace {

using ::topolab::server::testing::MakeExperiment;

TEST(FaultyStoreTest, DelegatesWhenNoFaultIsPending) {
  MemoryStore base;
  FaultyStore store(base);
  ASSERT_OK(store.CreateExperiments({MakeExperiment("e1", 1)}));
  ASSERT_OK(base.GetExperiment("e1"));
  ASSERT_OK(store.GetJob("e1-j0"));
  EXPECT_EQ(store.GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.calls("GetJob"), 2);
  EXPECT_EQ(store.calls("CreateExperiments"), 1);
}

TEST(FaultyStoreTest, FailNextFailsWithoutTouchingTheBase) {
  MemoryStore base;
  FaultyStore store(base);
  store.FailNext(2, absl::UnavailableError("disk busy"));
  EXPECT_EQ(store.CreateExperiments({MakeExperiment("e1", 1)}).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.GetExperiment("e1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(base.GetExperiment("e1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.pending_faults(), 0);
  ASSERT_OK(store.CreateExperiments({MakeExperiment("e1", 1)}));
}

TEST(FaultyStoreTest, FaultsCanTargetOneMethod) {
  MemoryStore base;
  FaultyStore store(base);
  ASSERT_OK(store.CreateExperiments({MakeExperiment("e1", 1)}));
  store.FailNext(1, absl::InternalError("io"), "ClaimJob");
  ASSERT_OK(store.GetJob("e1-j0"));  // other methods unaffected
  EXPECT_EQ(store.ClaimJob("e1-j0", "w", 1, 2).status().code(), absl::StatusCode::kInternal);
  auto j = base.GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->state, JobState::kQueued);
  ASSERT_OK(store.ClaimJob("e1-j0", "w", 1, 2));
}

TEST(FaultyStoreTest, FailNextWritesSkipsReads) {
  MemoryStore base;
  FaultyStore store(base);
  ASSERT_OK(store.CreateExperiments({MakeExperiment("e1", 1)}));
  store.FailNextWrites(1, absl::ResourceExhaustedError("disk full"));
  ASSERT_OK(store.ListActiveJobs());
  ASSERT_OK(store.ReadLogs("e1", "", 0, 10));
  EXPECT_EQ(store.AppendLogs("e1-j0", {"x"}, 1).status().code(), absl::StatusCode::kResourceExhausted);
  auto logs = base.ReadLogs("e1", "", 0, 10);
  ASSERT_OK(logs);
  EXPECT_TRUE(logs->empty());
}

TEST(FaultyStoreTest, AfterCallModeAppliesButReportsFailure) {
  MemoryStore base;
  FaultyStore store(base);
  ASSERT_OK(store.CreateExperiments({MakeExperiment("e1", 1)}));
  store.FailNext(1, absl::UnavailableError("ack lost"), "ClaimJob", FaultyStore::Mode::kAfterCall);
  EXPECT_EQ(store.ClaimJob("e1-j0", "w", 1, 2).status().code(), absl::StatusCode::kUnavailable);
  auto j = base.GetJob("e1-j0");
  ASSERT_OK(j);
  EXPECT_EQ(j->state, JobState::kRunning);
  EXPECT_EQ(j->fencing_token, 1);
}

TEST(FaultyStoreTest, ClearFaults) {
  MemoryStore base;
  FaultyStore store(base);
  store.FailNext(5, absl::InternalError("x"));
  EXPECT_EQ(store.pending_faults(), 5);
  store.ClearFaults();
  EXPECT_EQ(store.pending_faults(), 0);
  ASSERT_OK(store.ListWorkers());
}

}  // namespace
}  // namespace topolab::server
