// Artifact names coming from the scheduler or a child must never place a
// file outside the job's folder.
#include "worker/daemon/transfer.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace topolab::worker {
namespace {

TEST(CheckArtifactNameTest, AcceptsRelativePaths) {
  for (const char* name : {"metrics.json", "checkpoints/step_000100.pt", "a/b/c.d", "..hidden", "x..y"}) {
    EXPECT_OK(CheckArtifactName(name));
  }
  EXPECT_OK(CheckArtifactName(std::string(255, 'a')));
}

TEST(CheckArtifactNameTest, RejectsEscapesAndOddCharacters) {
  for (std::string name : {std::string(""), std::string("/etc/passwd"), std::string("../x"),
                           std::string("a/../../x"), std::string("a/./b"), std::string("a//b"),
                           std::string("a/"), std::string("."), std::string(".."),
                           std::string("a\\b"), std::string("a\nb"), std::string("a\0b", 3),
                           std::string(256, 'a')}) {
    absl::Status s = CheckArtifactName(name);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << "'" << name << "': " << s;
  }
}

TEST(SafeJoinTest, JoinsInsideBaseOnly) {
  absl::StatusOr<std::filesystem::path> p = SafeJoin("/w/jobs/j1/inputs/train", "checkpoints/final.pt");
  ASSERT_OK(p);
  EXPECT_EQ(p->string(), "/w/jobs/j1/inputs/train/checkpoints/final.pt");
  EXPECT_TRUE(absl::IsInvalidArgument(SafeJoin("/w", "../../etc/cron.d/x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(SafeJoin("/w", "/abs").status()));
}

}  // namespace
}  // namespace topolab::worker
