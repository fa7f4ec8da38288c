#include "proto/fatal_signal.h"

#include <signal.h>

#include <gtest/gtest.h>

namespace topolab {
namespace {

TEST(FatalSignalDeathTest, NamesTheSignalAndDiesOfIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        InstallFatalSignalHandler("topolab-test");
        raise(SIGSEGV);
      },
      testing::KilledBySignal(SIGSEGV), "topolab-test: fatal signal SIGSEGV \\(pid [0-9]+\\); backtrace:");
  EXPECT_EXIT(
      {
        InstallFatalSignalHandler("topolab-test");
        abort();
      },
      testing::KilledBySignal(SIGABRT), "fatal signal SIGABRT");
}

}  // namespace
}  // namespace topolab
