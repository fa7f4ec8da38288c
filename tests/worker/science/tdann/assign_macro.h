// ASSERT_OK_AND_ASSIGN for the tdann/ssl/swapopt tests (tests/test_util.h has
// only ASSERT_OK / EXPECT_OK).
#ifndef TOPOLAB_TESTS_WORKER_SCIENCE_TDANN_ASSIGN_MACRO_H_
#define TOPOLAB_TESTS_WORKER_SCIENCE_TDANN_ASSIGN_MACRO_H_

#include "tests/test_util.h"

#define TDANN_CONCAT_INNER(a, b) a##b
#define TDANN_CONCAT(a, b) TDANN_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(TDANN_CONCAT(_statusor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                   \
  auto tmp = (expr);                                                \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()

#endif  // TOPOLAB_TESTS_WORKER_SCIENCE_TDANN_ASSIGN_MACRO_H_
