#pragma once
// Token buckets for the tenants' per-minute limits, with an injectable clock so that tests
// drive time by hand.
//
// A bucket of `per_minute` holds at most per_minute units (one minute's burst) and refills
// continuously at per_minute / 60 units a second. It starts full, so with a frozen clock
// exactly per_minute unit-sized takes pass and the next one fails. Not thread-safe: the
// owner (tenants.h) locks.

#include <chrono>
#include <cstdint>
#include <functional>

namespace sluice::server {

// Monotonic time since an arbitrary epoch. Production: std::chrono::steady_clock.
using MonotonicClock = std::function<std::chrono::nanoseconds()>;
MonotonicClock steady_clock_source();

class TokenBucket {
 public:
  TokenBucket(int64_t per_minute, std::chrono::nanoseconds now);

  // Takes `units` when the bucket holds that many (after refilling up to `now`) and returns
  // 0; otherwise takes nothing and returns the whole seconds until it would hold them,
  // rounded up (>= 1). Units above the capacity never fit: the result is then -1.
  int64_t try_take(int64_t units, std::chrono::nanoseconds now);
  // Whole seconds until `units` would fit (0: now; -1: never), taking nothing.
  int64_t wait_seconds(int64_t units, std::chrono::nanoseconds now);
  // Gives back units taken earlier (capped at the capacity).
  void refund(int64_t units, std::chrono::nanoseconds now);
  // A new rate (a reload); the level is kept, capped at the new capacity.
  void set_rate(int64_t per_minute, std::chrono::nanoseconds now);

  int64_t per_minute() const { return per_minute_; }
  double level(std::chrono::nanoseconds now);  // units held now (refilled)

 private:
  void refill(std::chrono::nanoseconds now);

  int64_t per_minute_;
  double level_;  // units held, in [0, per_minute_]
  std::chrono::nanoseconds last_;
};

}  // namespace sluice::server
