// Status plumbing shared by every topolab module.
//
// Functions that can fail return absl::Status or absl::StatusOr<T>; callers
// pass failures up with RETURN_IF_ERROR / ASSIGN_OR_RETURN.
#ifndef TOPOLAB_PROTO_STATUS_MACROS_H_
#define TOPOLAB_PROTO_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TOPOLAB_CONCAT_INNER_(a, b) a##b
#define TOPOLAB_CONCAT_(a, b) TOPOLAB_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status _topolab_status = (expr);         \
    if (!_topolab_status.ok()) return _topolab_status; \
  } while (0)

// ASSIGN_OR_RETURN(auto x, FunctionReturningStatusOr());
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(TOPOLAB_CONCAT_(_topolab_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // TOPOLAB_PROTO_STATUS_MACROS_H_
