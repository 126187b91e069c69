// Host side of the attention prologue (kernels/cuda/qkv_prepare.h): the arguments are those
// of rms_norm, rope and cache_write over the same tensors, so the check runs those ops'
// checks on them (their messages, under this op's name), then what only the fusion needs.

#include "kernels/cuda/qkv_prepare.h"

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/paged_attention.h"  // check_cache_write, cache_write_params

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

constexpr std::string_view kOp = "qkv_prepare";

// A constituent op's verdict, renamed: "qkv_prepare (as rms_norm of q): ...".
Status as_part(std::string_view part, const Status& s) {
  if (s.is_ok()) return s;
  return fail(kOp, fmt::format("(as {}) {}", part, s.message()));
}

RopeArgs rope_of_q(const QkvPrepareArgs& a) {
  RopeArgs r = a.rope;
  r.x = a.q;
  return r;
}

NormWeight form_of(const Tensor& w, bool one_plus) {
  if (!w.defined()) return NormWeight::kNone;
  return one_plus ? NormWeight::kOnePlus : NormWeight::kPlain;
}

}  // namespace

Status check_qkv_prepare(const QkvPrepareArgs& a) {
  SLUICE_RETURN_IF_ERROR(as_part("rms_norm of q", check_rms_norm({a.q, a.q, a.q_norm, a.eps})));
  SLUICE_RETURN_IF_ERROR(as_part("rope of q", check_rope(rope_of_q(a))));
  const int64_t d = a.q.shape[2];
  if (d > kMaxPrepareHeadDim) {
    return fail(kOp, fmt::format("q has shape {}; expected head_dim <= {}", a.q.shape_string(),
                                 kMaxPrepareHeadDim));
  }
  if (!a.k.defined() && !a.v.defined()) {
    for (const Tensor* t : {&a.k_cache, &a.v_cache, &a.slots}) {
      if (t->defined()) {
        return fail(kOp,
                    "k and v are undefined but a cache or slots is given; expected all of "
                    "k, v, k_cache, v_cache and slots, or none");
      }
    }
    return Status::ok();
  }
  if (!a.k.defined() || !a.v.defined()) {
    return fail(kOp, "one of k and v is undefined; expected both (v may be k itself) or neither");
  }
  SLUICE_RETURN_IF_ERROR(as_part("rms_norm of k", check_rms_norm({a.k, a.k, a.k_norm, a.eps})));
  SLUICE_RETURN_IF_ERROR(
      as_part("cache_write", check_cache_write({a.k, a.v, a.k_cache, a.v_cache, a.slots})));
  if (a.k.shape[0] != a.q.shape[0] || a.k.shape[2] != d) {
    return fail(kOp, fmt::format("q has shape {} but k has {}; expected the same tokens and "
                                 "head_dim",
                                 a.q.shape_string(), a.k.shape_string()));
  }
  // The grid's y extent: one CTA per kQkvPrepareHeadsPerCta head rows (q, k and v).
  const int64_t rows = a.q.shape[1] + 2 * a.k.shape[1];
  if ((rows + kQkvPrepareHeadsPerCta - 1) / kQkvPrepareHeadsPerCta > kMaxGridYZ) {
    return fail(kOp, fmt::format("q has shape {} and k {}: {} head rows; expected at most {}",
                                 a.q.shape_string(), a.k.shape_string(), rows,
                                 kMaxGridYZ * kQkvPrepareHeadsPerCta));
  }
  // q is written in place; everything else the kernel writes is a cache.
  const Tensor* others[] = {&a.k, &a.v, &a.k_cache, &a.v_cache, &a.slots, &a.rope.positions};
  const char* names[] = {"k", "v", "k_cache", "v_cache", "slots", "positions"};
  for (size_t i = 0; i < std::size(others); ++i) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(kOp, "q", a.q, names[i], *others[i]));
  }
  for (const auto* cache : {&a.k_cache, &a.v_cache}) {
    SLUICE_RETURN_IF_ERROR(check_disjoint(kOp, "cache", *cache, "positions", a.rope.positions));
    SLUICE_RETURN_IF_ERROR(check_disjoint(kOp, "cache", *cache, "k_norm", a.k_norm));
  }
  return Status::ok();
}

void qkv_prepare(const QkvPrepareArgs& a, void* stream) {
  check_or_die(check_qkv_prepare(a));
  QkvPrepareParams p;
  p.q = rope_params(rope_of_q(a));
  p.q_norm = a.q_norm.data;
  p.q_norm_type = a.q_norm.defined() ? elem_type(a.q_norm.dtype) : ElemType::kF32;
  p.q_norm_form = form_of(a.q_norm, a.one_plus_weight);
  p.head_dim = static_cast<int32_t>(a.q.shape[2]);
  p.eps = a.eps;
  if (a.k.defined()) {
    p.kv = cache_write_params({a.k, a.v, a.k_cache, a.v_cache, a.slots});
    p.k_norm = a.k_norm.data;
    p.k_norm_type = a.k_norm.defined() ? elem_type(a.k_norm.dtype) : ElemType::kF32;
    p.k_norm_form = form_of(a.k_norm, a.one_plus_weight);
    p.v_norm = a.v_norm;
  }
  launch_qkv_prepare(p, stream);
}

}  // namespace sluice::kernels::cuda
