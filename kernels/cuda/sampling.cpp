// Host side of the GPU sampler (kernels/cuda/sampling.h): argument validation (Tensor views
// -> Status naming the bad tensor) and translation into the launch block. Plain C++:
// sampling.cu stays free of fmt and std::string.

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "common/check.h"
#include "kernels/cuda/sampling.h"

namespace sluice::kernels::cuda {
namespace {

constexpr std::string_view kOp = "sample";

Status fail(std::string message) {
  return Status::invalid_argument(fmt::format("{}: {}", kOp, message));
}

Status check_on_device(std::string_view name, const Tensor& t) {
  if (!t.defined()) return fail(fmt::format("{} is undefined (null data)", name));
  if (t.device != Device::kCuda) {
    return fail(fmt::format("{} is in host memory (Device::kCpu); expected a view of device "
                            "memory (Device::kCuda)",
                            name));
  }
  return Status::ok();
}

Status check_dtype(std::string_view name, const Tensor& t, DType want) {
  if (t.dtype == want) return Status::ok();
  return fail(
      fmt::format("{} has dtype {}; expected {}", name, dtype_name(t.dtype), dtype_name(want)));
}

// A device matrix [rows, cols] of `dtype`: non-negative row stride, contiguous rows.
Status check_matrix(std::string_view name, const Tensor& t, DType dtype, int64_t rows,
                    int64_t cols, std::string_view what) {
  SLUICE_RETURN_IF_ERROR(check_on_device(name, t));
  SLUICE_RETURN_IF_ERROR(check_dtype(name, t, dtype));
  if (t.ndim != 2 || t.shape[0] != rows || (cols >= 0 && t.shape[1] != cols)) {
    return fail(fmt::format("{} has shape {}; expected [{}, {}] ({})", name, t.shape_string(),
                            rows, cols >= 0 ? std::to_string(cols) : std::string("n"), what));
  }
  if (t.shape[1] < 0 || t.strides[0] < 0) {
    return fail(fmt::format("{} has shape {} with row stride {}; expected non-negative extents "
                            "and strides",
                            name, t.shape_string(), t.strides[0]));
  }
  if (t.shape[1] > 1 && t.strides[1] != 1) {
    return fail(fmt::format("{} has stride {} in its last dimension; expected 1 (contiguous "
                            "rows)",
                            name, t.strides[1]));
  }
  return Status::ok();
}

// Bytes [begin, end) a view can touch; empty for a view without elements.
struct ByteSpan {
  uintptr_t begin = 0, end = 0;
};

ByteSpan byte_span(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return {};
  int64_t last = 0;
  for (int d = 0; d < t.ndim; ++d) last += (t.shape[d] - 1) * t.strides[d];
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  return {begin, begin + static_cast<uintptr_t>(last + 1) * dtype_size(t.dtype)};
}

Status check_disjoint(std::string_view written_name, const Tensor& written,
                      std::string_view other_name, const Tensor& other) {
  const ByteSpan a = byte_span(written);
  const ByteSpan b = byte_span(other);
  if (a.begin < b.end && b.begin < a.end) {
    return fail(fmt::format("{} overlaps {} in memory; expected disjoint memory", written_name,
                            other_name));
  }
  return Status::ok();
}

bool aligned(const void* p, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Rows of `t` start 16-byte aligned (4-wide accesses of 4-byte elements).
bool rows_aligned16(const Tensor& t) {
  return aligned(t.data, 16) && (t.shape[0] <= 1 || t.strides[0] % 4 == 0);
}

}  // namespace

size_t sampling_workspace_bytes(int64_t rows, int64_t vocab) { return 0; }

Status check_sample(const SampleArgs& a) {
  // logits first: it fixes R and V.
  SLUICE_RETURN_IF_ERROR(check_on_device("logits", a.logits));
  SLUICE_RETURN_IF_ERROR(check_dtype("logits", a.logits, DType::kF32));
  if (a.logits.ndim != 2) {
    return fail(fmt::format("logits has shape {}; expected [R, V]", a.logits.shape_string()));
  }
  const int64_t rows = a.logits.shape[0];
  const int64_t vocab = a.logits.shape[1];
  if (rows < 0 || rows > std::numeric_limits<int32_t>::max()) {
    return fail(fmt::format("logits has shape {}; expected R in [0, {}]",
                            a.logits.shape_string(), std::numeric_limits<int32_t>::max()));
  }
  if (vocab < 1 || vocab > kMaxSamplingVocab) {
    return fail(fmt::format("logits has shape {}; expected V in [1, {}]",
                            a.logits.shape_string(), kMaxSamplingVocab));
  }
  SLUICE_RETURN_IF_ERROR(check_matrix("logits", a.logits, DType::kF32, rows, vocab, "R, V"));
  if (rows > 1 && a.logits.strides[0] < vocab) {
    return fail(fmt::format("logits has row stride {} < V = {}; rows are rewritten in place, "
                            "so they must not overlap",
                            a.logits.strides[0], vocab));
  }

  SLUICE_RETURN_IF_ERROR(check_matrix("params", a.params, DType::kI32, rows,
                                      kSamplingRowParamsWords, "R SamplingRowParams"));
  if (rows > 1 && a.params.strides[0] != kSamplingRowParamsWords) {
    return fail(fmt::format("params has row stride {}; expected {} (a contiguous array of "
                            "SamplingRowParams)",
                            a.params.strides[0], kSamplingRowParamsWords));
  }
  if (!aligned(a.params.data, alignof(SamplingRowParams))) {
    return fail(fmt::format("params data is not {}-byte aligned; expected the address of a "
                            "SamplingRowParams array",
                            alignof(SamplingRowParams)));
  }

  if (a.token_counts.defined()) {
    SLUICE_RETURN_IF_ERROR(
        check_matrix("token_counts", a.token_counts, DType::kI32, rows, vocab, "R, V"));
  }
  if (a.prompt_mask.defined()) {
    SLUICE_RETURN_IF_ERROR(check_matrix("prompt_mask", a.prompt_mask, DType::kI32, rows,
                                        (vocab + 31) / 32, "R, ceil(V / 32) bit words"));
  }
  if (a.logit_bias_ids.defined() != a.logit_bias_values.defined()) {
    return fail(fmt::format("logit_bias_ids is {} but logit_bias_values is {}; expected both or "
                            "neither",
                            a.logit_bias_ids.defined() ? "defined" : "undefined",
                            a.logit_bias_values.defined() ? "defined" : "undefined"));
  }
  if (a.logit_bias_ids.defined()) {
    SLUICE_RETURN_IF_ERROR(
        check_matrix("logit_bias_ids", a.logit_bias_ids, DType::kI32, rows, -1, "R, B"));
    const int64_t slots = a.logit_bias_ids.shape[1];
    SLUICE_RETURN_IF_ERROR(check_matrix("logit_bias_values", a.logit_bias_values, DType::kF32,
                                        rows, slots, "R, B as logit_bias_ids"));
    if (slots > kMaxSamplingSparseSlots) {
      return fail(fmt::format("logit_bias_ids has {} slots per row; expected at most {}", slots,
                              kMaxSamplingSparseSlots));
    }
  }
  if (a.banned_ids.defined()) {
    SLUICE_RETURN_IF_ERROR(check_matrix("banned_ids", a.banned_ids, DType::kI32, rows, -1, "R, M"));
    if (a.banned_ids.shape[1] > kMaxSamplingSparseSlots) {
      return fail(fmt::format("banned_ids has {} slots per row; expected at most {}",
                              a.banned_ids.shape[1], kMaxSamplingSparseSlots));
    }
  }

  SLUICE_RETURN_IF_ERROR(check_on_device("out_tokens", a.out_tokens));
  SLUICE_RETURN_IF_ERROR(check_dtype("out_tokens", a.out_tokens, DType::kI32));
  if (a.out_tokens.ndim != 1 || a.out_tokens.shape[0] != rows ||
      (rows > 1 && a.out_tokens.strides[0] != 1)) {
    return fail(fmt::format("out_tokens has shape {}; expected a contiguous [{}]",
                            a.out_tokens.shape_string(), rows));
  }

  const size_t need = sampling_workspace_bytes(rows, vocab);
  if (need > 0) {
    SLUICE_RETURN_IF_ERROR(check_on_device("workspace", a.workspace));
    if (a.workspace.nbytes() < need) {
      return fail(fmt::format("workspace has {} bytes; expected at least {} "
                              "(sampling_workspace_bytes)",
                              a.workspace.nbytes(), need));
    }
  }

  // Written: logits (in place) and out_tokens. Neither may share memory with another input.
  const std::pair<std::string_view, const Tensor*> inputs[] = {
      {"params", &a.params},
      {"token_counts", &a.token_counts},
      {"prompt_mask", &a.prompt_mask},
      {"logit_bias_ids", &a.logit_bias_ids},
      {"logit_bias_values", &a.logit_bias_values},
      {"banned_ids", &a.banned_ids},
      {"workspace", &a.workspace}};
  for (const auto& [name, t] : inputs) {
    SLUICE_RETURN_IF_ERROR(check_disjoint("logits", a.logits, name, *t));
    SLUICE_RETURN_IF_ERROR(check_disjoint("out_tokens", a.out_tokens, name, *t));
  }
  SLUICE_RETURN_IF_ERROR(check_disjoint("out_tokens", a.out_tokens, "logits", a.logits));
  return Status::ok();
}

void sample(const SampleArgs& a, void* stream) {
  const Status status = check_sample(a);
  SLUICE_CHECK(status.is_ok(), "{}", status.message());
  SampleParams p;
  p.rows = static_cast<int32_t>(a.logits.shape[0]);
  p.vocab = static_cast<int32_t>(a.logits.shape[1]);
  if (p.rows == 0) return;
  p.logits = a.logits.ptr<float>();
  p.logits_stride = a.logits.strides[0];
  p.params = static_cast<const SamplingRowParams*>(a.params.data);
  p.out_tokens = a.out_tokens.ptr<int32_t>();
  if (a.token_counts.defined()) {
    p.token_counts = a.token_counts.ptr<const int32_t>();
    p.counts_stride = a.token_counts.strides[0];
  }
  if (a.prompt_mask.defined()) {
    p.prompt_mask = a.prompt_mask.ptr<const uint32_t>();
    p.mask_stride = a.prompt_mask.strides[0];
  }
  if (a.logit_bias_ids.defined() && a.logit_bias_ids.shape[1] > 0) {
    p.bias_ids = a.logit_bias_ids.ptr<const int32_t>();
    p.bias_values = a.logit_bias_values.ptr<const float>();
    p.bias_ids_stride = a.logit_bias_ids.strides[0];
    p.bias_values_stride = a.logit_bias_values.strides[0];
    p.num_bias = static_cast<int32_t>(a.logit_bias_ids.shape[1]);
  }
  if (a.banned_ids.defined() && a.banned_ids.shape[1] > 0) {
    p.banned_ids = a.banned_ids.ptr<const int32_t>();
    p.banned_stride = a.banned_ids.strides[0];
    p.num_banned = static_cast<int32_t>(a.banned_ids.shape[1]);
  }
  p.vectorized = rows_aligned16(a.logits) &&
                 (!a.token_counts.defined() || rows_aligned16(a.token_counts));
  launch_sample(p, stream);
}

}  // namespace sluice::kernels::cuda
