#include "server/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace sluice::server {

MonotonicClock steady_clock_source() {
  return [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  };
}

TokenBucket::TokenBucket(int64_t per_minute, std::chrono::nanoseconds now)
    : per_minute_(std::max<int64_t>(per_minute, 1)), level_(static_cast<double>(per_minute_)), last_(now) {}

void TokenBucket::refill(std::chrono::nanoseconds now) {
  if (now <= last_) return;  // a clock that steps back refills nothing
  const double seconds = std::chrono::duration<double>(now - last_).count();
  level_ = std::min(static_cast<double>(per_minute_), level_ + seconds * static_cast<double>(per_minute_) / 60.0);
  last_ = now;
}

double TokenBucket::level(std::chrono::nanoseconds now) {
  refill(now);
  return level_;
}

int64_t TokenBucket::wait_seconds(int64_t units, std::chrono::nanoseconds now) {
  refill(now);
  if (units > per_minute_) return -1;
  const double missing = static_cast<double>(units) - level_;
  if (missing <= 0) return 0;
  // NOTE: a tiny slack keeps float dust (59.9999999 s) from adding a whole second.
  const double seconds = missing * 60.0 / static_cast<double>(per_minute_);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(seconds - 1e-9)));
}

int64_t TokenBucket::try_take(int64_t units, std::chrono::nanoseconds now) {
  const int64_t wait = wait_seconds(units, now);
  if (wait == 0) level_ -= static_cast<double>(units);
  return wait;
}

void TokenBucket::refund(int64_t units, std::chrono::nanoseconds now) {
  refill(now);
  if (units > 0) level_ = std::min(static_cast<double>(per_minute_), level_ + static_cast<double>(units));
}

void TokenBucket::set_rate(int64_t per_minute, std::chrono::nanoseconds now) {
  refill(now);
  per_minute_ = std::max<int64_t>(per_minute, 1);
  level_ = std::min(level_, static_cast<double>(per_minute_));
}

}  // namespace sluice::server
