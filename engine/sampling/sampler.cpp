#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "engine/sampling/penalties.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/isa.h"

namespace sluice::sampling {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  float best_v = -INFINITY;
  bool found = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    float v = logits[i];
    if (std::isnan(v)) continue;
    if (!found || v > best_v) {
      best_v = v;
      best = static_cast<int32_t>(i);
      found = true;
    }
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt_tokens)
    : params_(params), prompt_ids_(prompt_tokens.begin(), prompt_tokens.end()) {
  if (params.seed) {
    rng_.seed(*params.seed);
  } else {
    std::random_device rd;
    rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  }
  std::sort(prompt_ids_.begin(), prompt_ids_.end());
  prompt_ids_.erase(std::unique(prompt_ids_.begin(), prompt_ids_.end()), prompt_ids_.end());
}

void Sampler::accept(int32_t token) {
  ++num_generated_;
  int32_t& count = counts_[token];
  if (count++ == 0 && !std::binary_search(prompt_ids_.begin(), prompt_ids_.end(), token)) {
    generated_only_ids_.push_back(token);
  }
}

std::span<const float> Sampler::process(std::span<const float> logits) {
  const SamplingParams& p = params_;
  const bool repetition =
      p.repetition_penalty != 1.0f && (!prompt_ids_.empty() || !generated_only_ids_.empty());
  const bool presence_frequency =
      (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) && !counts_.empty();
  const bool bias = !p.logit_bias.empty();
  const bool mask = num_generated_ < p.min_tokens && !p.stop_token_ids.empty();
  if (!repetition && !presence_frequency && !bias && !mask) return logits;

  work_.assign(logits.begin(), logits.end());
  std::span<float> w(work_);
  if (repetition) {
    apply_repetition_penalty(w, p.repetition_penalty, prompt_ids_);
    apply_repetition_penalty(w, p.repetition_penalty, generated_only_ids_);
  }
  if (presence_frequency) {
    apply_presence_frequency(w, p.presence_penalty, p.frequency_penalty, counts_);
  }
  if (bias) apply_logit_bias(w, p.logit_bias);
  if (mask) mask_tokens(w, p.stop_token_ids);
  return w;
}

int32_t Sampler::sample(std::span<const float> logits, SampleLogprobs* out_logprobs) {
  std::span<const float> l = process(logits);
  int32_t token = (params_.temperature <= 0.0f || params_.top_k == 1) ? argmax(l) : draw(l);
  if (out_logprobs != nullptr && params_.logprobs >= 0 && !l.empty()) {
    compute_logprobs(l, token, params_.logprobs, out_logprobs);
  }
  return token;
}

int32_t Sampler::draw(std::span<const float> logits) {
  const float inv_t = 1.0f / params_.temperature;
  const bool truncated = (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < logits.size()) ||
                         params_.top_p < 1.0f || params_.min_p > 0.0f;
  if (!truncated) {
    if (std::optional<int32_t> t = draw_full(logits, inv_t)) return *t;
  }

  // Candidates as (scaled logit, id); NaN and -inf (masked) dropped.
  auto& c = candidates_;
  c.clear();
  c.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    float v = logits[i];
    if (!std::isnan(v) && v != -INFINITY) c.emplace_back(v * inv_t, static_cast<int32_t>(i));
  }
  if (c.empty()) return argmax(logits);
  auto by_value_desc = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };

  // top-k: keep the k best (unordered) by partial selection.
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < c.size()) {
    std::nth_element(c.begin(), c.begin() + params_.top_k, c.end(), by_value_desc);
    c.resize(params_.top_k);
  }
  float max_v = -INFINITY;
  for (const auto& e : c) max_v = std::max(max_v, e.first);
  // Turn into unnormalised probabilities relative to the best candidate (best = 1).
  double total = 0;
  for (auto& e : c) {
    e.first = std::exp(e.first - max_v);
    total += e.first;
  }

  // top-p: the smallest prefix of the sorted candidates whose mass reaches p. Sort only as
  // far as needed, doubling the sorted prefix.
  if (params_.top_p < 1.0f) {
    const double target = params_.top_p * total;
    size_t sorted = std::min<size_t>(64, c.size());
    for (;;) {
      std::partial_sort(c.begin(), c.begin() + sorted, c.end(), by_value_desc);
      double mass = 0;
      size_t keep = 0;
      while (keep < sorted && mass < target) mass += c[keep++].first;
      if (mass >= target || sorted == c.size()) {
        c.resize(std::max<size_t>(keep, 1));
        break;
      }
      sorted = std::min(sorted * 2, c.size());
    }
  }

  // min-p: drop candidates below min_p times the best probability (the best is 1 here).
  if (params_.min_p > 0.0f) {
    float threshold = params_.min_p;
    c.erase(std::remove_if(c.begin(), c.end(), [&](const auto& e) { return e.first < threshold; }),
            c.end());
  }

  double mass = 0;
  for (const auto& e : c) mass += e.first;
  std::uniform_real_distribution<double> uni(0.0, mass);
  double r = uni(rng_);
  for (const auto& e : c) {
    r -= e.first;
    if (r < 0) return e.second;
  }
  return c.back().second;
}

std::optional<int32_t> Sampler::draw_full(std::span<const float> logits, float inv_t) {
  const int64_t n = static_cast<int64_t>(logits.size());
  auto& p = probs_;
  p.resize(logits.size());
  float max_v = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    const float v = logits[i] * inv_t;
    if (std::isnan(v)) return std::nullopt;  // the general path drops NaN
    p[i] = v;
    max_v = std::max(max_v, v);
  }
  if (!std::isfinite(max_v)) return std::nullopt;  // all masked, or an overflow to +inf
  // exp(v - max) in place, chunk by chunk, with the chunk sums: the walk below skips whole
  // chunks. (-inf entries, masked ids, become exact zeros.)
  const kernels::cpu::IsaKernels& kern = kernels::cpu::isa_kernels(kernels::cpu::active_isa());
  const int64_t chunks = (n + kDrawChunk - 1) / kDrawChunk;
  chunk_sums_.resize(static_cast<size_t>(chunks));
  double total = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * kDrawChunk, len = std::min(kDrawChunk, n - b);
    chunk_sums_[c] = kern.exp_sum(p.data() + b, len, max_v, p.data() + b);
    total += chunk_sums_[c];
  }
  std::uniform_real_distribution<double> uni(0.0, total);
  double r = uni(rng_);
  int64_t last = -1;  // the last id with a non-zero probability, for rounding at the end
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * kDrawChunk, len = std::min(kDrawChunk, n - b);
    if (chunk_sums_[c] <= 0.0f) continue;
    if (r >= chunk_sums_[c] && c + 1 < chunks) {
      r -= chunk_sums_[c];
      for (int64_t i = b + len - 1; i >= b; --i) {
        if (p[i] > 0.0f) {
          last = i;
          break;
        }
      }
      continue;
    }
    for (int64_t i = b; i < b + len; ++i) {
      if (p[i] <= 0.0f) continue;
      last = i;
      r -= p[i];
      if (r < 0) return static_cast<int32_t>(i);
    }
  }
  return static_cast<int32_t>(last);
}

}  // namespace sluice::sampling
