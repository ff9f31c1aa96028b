// MOBILENET_CHECK(condition): aborts with the condition and its location when false, in
// every build type. For programming errors only; bad input returns an absl::Status.
#ifndef MOBILENET_COMMON_CHECK_H_
#define MOBILENET_COMMON_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define MOBILENET_CHECK(condition)                                                       \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

#endif  // MOBILENET_COMMON_CHECK_H_
