#include "engine/sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"

namespace sluice::sampling {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// True when a ranks strictly before b: higher value, ties by lower id.
bool ranks_before(const TokenLogprob& a, const TokenLogprob& b) {
  return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
}

}  // namespace

double log_sum_exp(std::span<const float> logits) {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0.0;
  for (float f : logits) {
    if (std::isnan(f) || f == kNegInf) continue;
    double v = f;
    if (v > m) {
      s = s * std::exp(m - v) + 1.0;  // rescale the running sum to the new maximum
      m = v;
    } else {
      s += std::exp(v - m);
    }
  }
  if (s == 0.0) return -std::numeric_limits<double>::infinity();
  return m + std::log(s);
}

void compute_logprobs(std::span<const float> logits, int32_t chosen, int k, SampleLogprobs* out) {
  SLUICE_CHECK(chosen >= 0 && static_cast<size_t>(chosen) < logits.size(),
               "chosen token {} outside logits of size {}", chosen, logits.size());
  SLUICE_CHECK(k >= 0, "negative top-k {} for logprobs", k);
  const size_t want = std::min(static_cast<size_t>(k), logits.size());

  // One pass: online log-sum-exp plus a heap of the `want` best (heap front = the worst kept).
  double m = -std::numeric_limits<double>::infinity();
  double s = 0.0;
  auto& heap = out->top;
  heap.clear();
  heap.reserve(want);
  for (size_t i = 0; i < logits.size(); ++i) {
    float f = logits[i];
    if (std::isnan(f)) f = kNegInf;
    if (f != kNegInf) {
      double v = f;
      if (v > m) {
        s = s * std::exp(m - v) + 1.0;
        m = v;
      } else {
        s += std::exp(v - m);
      }
    }
    if (want == 0) continue;
    TokenLogprob e{static_cast<int32_t>(i), f};
    if (heap.size() < want) {
      heap.push_back(e);
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    } else if (f > heap.front().logprob) {  // ids ascend, so an equal value never beats a kept one
      std::pop_heap(heap.begin(), heap.end(), ranks_before);
      heap.back() = e;
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    }
  }
  std::sort(heap.begin(), heap.end(), ranks_before);  // at most k (<= a few dozen) entries

  const bool none = (s == 0.0);
  const double lse = none ? 0.0 : m + std::log(s);
  auto to_logprob = [&](float f) -> float {
    if (none || std::isnan(f) || f == kNegInf) return kNegInf;
    return static_cast<float>(static_cast<double>(f) - lse);
  };
  for (auto& e : heap) e.logprob = to_logprob(e.logprob);
  out->chosen = {chosen, to_logprob(logits[chosen])};
}

}  // namespace sluice::sampling
