#pragma once
// SLUICE_CHECK: invariants that, when broken, mean a bug in sluice (not bad input). It
// prints the condition, a formatted message and file:line, then aborts. Bad input returns
// a Status instead (common/status.h).

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace sluice::detail {
[[noreturn]] void check_failed(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace sluice::detail

#define SLUICE_CHECK(cond, ...)                                                              \
  do {                                                                                       \
    if (!(cond)) [[unlikely]] {                                                              \
      ::sluice::detail::check_failed(#cond, __FILE__, __LINE__, ::fmt::format("" __VA_ARGS__)); \
    }                                                                                        \
  } while (0)

#ifdef NDEBUG
#define SLUICE_DCHECK(cond, ...) \
  do {                           \
  } while (0)
#else
#define SLUICE_DCHECK(cond, ...) SLUICE_CHECK(cond, __VA_ARGS__)
#endif
