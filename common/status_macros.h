// Status propagation macros. Abseil 20220623 (Debian 12) ships none.
#ifndef MOBILENET_COMMON_STATUS_MACROS_H_
#define MOBILENET_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOBILENET_CONCAT_INNER_(a, b) a##b
#define MOBILENET_CONCAT_(a, b) MOBILENET_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the calling function if not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status _status_to_return = (expr);         \
    if (!_status_to_return.ok()) return _status_to_return; \
  } while (0)

// `ASSIGN_OR_RETURN(T x, StatusOr<T> expr)`: declares/assigns `lhs` from the value of
// `expr`, or returns its status from the calling function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(MOBILENET_CONCAT_(_status_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // MOBILENET_COMMON_STATUS_MACROS_H_
