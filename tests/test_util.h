// Test helpers shared by every topolab test.
#ifndef TOPOLAB_TESTS_TEST_UTIL_H_
#define TOPOLAB_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace topolab::testing {
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) { return s.status(); }
}  // namespace topolab::testing

// Prints the Status on failure.
#define ASSERT_OK(expr)                                                   \
  do {                                                                    \
    const auto& _s = (expr);                                              \
    ASSERT_TRUE(::topolab::testing::StatusOf(_s).ok())                    \
        << #expr << ": " << ::topolab::testing::StatusOf(_s).ToString();  \
  } while (0)
#define EXPECT_OK(expr)                                                   \
  do {                                                                    \
    const auto& _s = (expr);                                              \
    EXPECT_TRUE(::topolab::testing::StatusOf(_s).ok())                    \
        << #expr << ": " << ::topolab::testing::StatusOf(_s).ToString();  \
  } while (0)

#endif  // TOPOLAB_TESTS_TEST_UTIL_H_
