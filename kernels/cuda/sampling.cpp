// Host side of the GPU sampler (kernels/cuda/sampling.h): argument validation (Tensor views
// -> Status naming the bad tensor) and translation into the launch block. Plain C++:
// sampling.cu stays free of fmt and std::string.

#include "kernels/cuda/sampling.h"

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "kernels/cuda/arg_checks.h"

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

constexpr std::string_view kOp = "sample";

// A device matrix [rows, cols] of `dtype`: non-negative row stride, contiguous rows.
Status check_matrix(std::string_view name, const Tensor& t, DType dtype, int64_t rows, int64_t cols,
                    std::string_view what) {
  SLUICE_RETURN_IF_ERROR(check_on_device(kOp, name, t));
  SLUICE_RETURN_IF_ERROR(check_dtype(kOp, name, t, dtype));
  if (t.ndim != 2 || t.shape[0] != rows || (cols >= 0 && t.shape[1] != cols)) {
    return fail(kOp, fmt::format("{} has shape {}; expected [{}, {}] ({})", name, t.shape_string(),
                                 rows, cols >= 0 ? std::to_string(cols) : std::string("n"), what));
  }
  if (t.shape[1] < 0 || t.strides[0] < 0) {
    return fail(kOp,
                fmt::format("{} has shape {} with row stride {}; expected non-negative extents "
                            "and strides",
                            name, t.shape_string(), t.strides[0]));
  }
  return check_last_dim_contiguous(kOp, name, t);
}

}  // namespace

size_t sampling_workspace_bytes(int64_t rows, int64_t vocab) { return 0; }

Status check_sample(const SampleArgs& a) {
  // logits first: it fixes R and V.
  SLUICE_RETURN_IF_ERROR(check_on_device(kOp, "logits", a.logits));
  SLUICE_RETURN_IF_ERROR(check_dtype(kOp, "logits", a.logits, DType::kF32));
  if (a.logits.ndim != 2) {
    return fail(kOp, fmt::format("logits has shape {}; expected [R, V]", a.logits.shape_string()));
  }
  const int64_t rows = a.logits.shape[0];
  const int64_t vocab = a.logits.shape[1];
  if (rows < 0 || rows > std::numeric_limits<int32_t>::max()) {
    return fail(kOp, fmt::format("logits has shape {}; expected R in [0, {}]",
                                 a.logits.shape_string(), std::numeric_limits<int32_t>::max()));
  }
  if (vocab < 1 || vocab > kMaxSamplingVocab) {
    return fail(kOp, fmt::format("logits has shape {}; expected V in [1, {}]",
                                 a.logits.shape_string(), kMaxSamplingVocab));
  }
  SLUICE_RETURN_IF_ERROR(check_matrix("logits", a.logits, DType::kF32, rows, vocab, "R, V"));
  if (rows > 1 && a.logits.strides[0] < vocab) {
    return fail(kOp, fmt::format("logits has row stride {} < V = {}; rows are rewritten in place, "
                                 "so they must not overlap",
                                 a.logits.strides[0], vocab));
  }

  SLUICE_RETURN_IF_ERROR(check_matrix("params", a.params, DType::kI32, rows,
                                      kSamplingRowParamsWords, "R SamplingRowParams"));
  if (rows > 1 && a.params.strides[0] != kSamplingRowParamsWords) {
    return fail(kOp, fmt::format("params has row stride {}; expected {} (a contiguous array of "
                                 "SamplingRowParams)",
                                 a.params.strides[0], kSamplingRowParamsWords));
  }
  if (reinterpret_cast<uintptr_t>(a.params.data) % alignof(SamplingRowParams) != 0) {
    return fail(kOp, fmt::format("params data is not {}-byte aligned; expected the address of a "
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
    return fail(kOp,
                fmt::format("logit_bias_ids is {} but logit_bias_values is {}; expected both or "
                            "neither",
                            a.logit_bias_ids.defined() ? "defined" : "undefined",
                            a.logit_bias_values.defined() ? "defined" : "undefined"));
  }
  if (a.logit_bias_ids.defined()) {
    SLUICE_RETURN_IF_ERROR(
        check_matrix("logit_bias_ids", a.logit_bias_ids, DType::kI32, rows, -1, "R, B"));
    const int64_t slots = a.logit_bias_ids.shape[1];
    SLUICE_RETURN_IF_ERROR(check_matrix("logit_bias_values", a.logit_bias_values, DType::kF32, rows,
                                        slots, "R, B as logit_bias_ids"));
    if (slots > kMaxSamplingSparseSlots) {
      return fail(kOp, fmt::format("logit_bias_ids has {} slots per row; expected at most {}",
                                   slots, kMaxSamplingSparseSlots));
    }
  }
  if (a.banned_ids.defined()) {
    SLUICE_RETURN_IF_ERROR(check_matrix("banned_ids", a.banned_ids, DType::kI32, rows, -1, "R, M"));
    if (a.banned_ids.shape[1] > kMaxSamplingSparseSlots) {
      return fail(kOp, fmt::format("banned_ids has {} slots per row; expected at most {}",
                                   a.banned_ids.shape[1], kMaxSamplingSparseSlots));
    }
  }

  SLUICE_RETURN_IF_ERROR(check_i32_vector(kOp, "out_tokens", a.out_tokens, rows, ""));

  SLUICE_RETURN_IF_ERROR(check_workspace(kOp, a.workspace, sampling_workspace_bytes(rows, vocab),
                                         "sampling_workspace_bytes"));

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
    SLUICE_RETURN_IF_ERROR(check_disjoint(kOp, "logits", a.logits, name, *t));
    SLUICE_RETURN_IF_ERROR(check_disjoint(kOp, "out_tokens", a.out_tokens, name, *t));
  }
  SLUICE_RETURN_IF_ERROR(check_disjoint(kOp, "out_tokens", a.out_tokens, "logits", a.logits));
  return Status::ok();
}

void sample(const SampleArgs& a, void* stream) {
  check_or_die(check_sample(a));
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
  p.vectorized =
      rows_aligned16(a.logits) && (!a.token_counts.defined() || rows_aligned16(a.token_counts));
  launch_sample(p, stream);
}

}  // namespace sluice::kernels::cuda
