#include "engine/sampling/sampling_params.h"

#include <fmt/format.h>

#include <cmath>
#include <string_view>

namespace sluice::sampling {
namespace {

// `lo_open` / `hi_open` make the bound exclusive.
Status check_range(std::string_view name, float v, float lo, float hi, bool lo_open = false,
                   bool hi_open = false) {
  if (!std::isfinite(v)) {
    return Status::invalid_argument(fmt::format("{} must be a finite number, got {}", name, v));
  }
  bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok) {
    return Status::invalid_argument(fmt::format("{} must be in {}{}, {}{}, got {}", name,
                                                lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]",
                                                v));
  }
  return Status::ok();
}

}  // namespace

Status validate(const SamplingParams& p, int vocab_size, int max_logprobs) {
  SLUICE_RETURN_IF_ERROR(check_range("temperature", p.temperature, 0.0f, 2.0f));
  SLUICE_RETURN_IF_ERROR(check_range("top_p", p.top_p, 0.0f, 1.0f, /*lo_open=*/true));
  if (p.top_k != -1 && p.top_k < 1) {
    return Status::invalid_argument(fmt::format("top_k must be -1 (off) or >= 1, got {}", p.top_k));
  }
  SLUICE_RETURN_IF_ERROR(check_range("min_p", p.min_p, 0.0f, 1.0f));
  SLUICE_RETURN_IF_ERROR(check_range("presence_penalty", p.presence_penalty, -2.0f, 2.0f));
  SLUICE_RETURN_IF_ERROR(check_range("frequency_penalty", p.frequency_penalty, -2.0f, 2.0f));
  SLUICE_RETURN_IF_ERROR(
      check_range("repetition_penalty", p.repetition_penalty, 0.0f, 2.0f, /*lo_open=*/true));

  if (p.logit_bias.size() > static_cast<size_t>(kMaxLogitBiasEntries)) {
    return Status::invalid_argument(fmt::format("logit_bias has {} entries; at most {} allowed",
                                                p.logit_bias.size(), kMaxLogitBiasEntries));
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab_size) {
      return Status::invalid_argument(fmt::format(
          "logit_bias key {} is not a token id in the vocabulary [0, {})", id, vocab_size));
    }
    if (!std::isfinite(bias) || bias < -100.0f || bias > 100.0f) {
      return Status::invalid_argument(
          fmt::format("logit_bias value for token {} must be in [-100, 100], got {}", id, bias));
    }
  }

  if (p.logprobs != -1 && (p.logprobs < 0 || p.logprobs > max_logprobs)) {
    return Status::invalid_argument(
        fmt::format("top_logprobs must be in [0, {}] (raise --max-logprobs for more), got {}",
                    max_logprobs, p.logprobs));
  }
  if (p.prompt_logprobs != -1 && (p.prompt_logprobs < 0 || p.prompt_logprobs > max_logprobs)) {
    return Status::invalid_argument(
        fmt::format("prompt_logprobs must be in [0, {}] (raise --max-logprobs for more), got {}",
                    max_logprobs, p.prompt_logprobs));
  }
  if (p.min_tokens < 0) {
    return Status::invalid_argument(fmt::format("min_tokens must be >= 0, got {}", p.min_tokens));
  }
  for (int32_t id : p.stop_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return Status::invalid_argument(fmt::format(
          "stop_token_ids entry {} is not a token id in the vocabulary [0, {})", id, vocab_size));
    }
  }
  return Status::ok();
}

}  // namespace sluice::sampling
