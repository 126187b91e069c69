// The CPU op tables: one per ISA, each binding the shared op code (ops_impl.h) to that
// ISA's leaf kernels (isa_kernels.h).

#include "kernels/cpu/cpu_ops.h"

#include "common/check.h"
#include "kernels/cpu/ops_impl.h"
#include "kernels/cpu/paged_ops.h"

namespace sluice::kernels::cpu {
namespace {

const IsaKernels& kernels_of(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return kScalarKernels;
    case CpuIsa::kAvx2:
      return kAvx2Kernels;
    case CpuIsa::kAvx512:
      return kAvx512Kernels;
  }
  return kScalarKernels;
}

template <CpuIsa kIsa>
struct Bound {
  static void rms_norm(const RmsNormArgs& a) { run_rms_norm(a, kernels_of(kIsa)); }
  static void add_rms_norm(const AddRmsNormArgs& a) { run_add_rms_norm(a, kernels_of(kIsa)); }
  static void matmul(const MatmulArgs& a) { run_matmul(a, kernels_of(kIsa)); }
  static void attention(const AttentionArgs& a) { run_attention(a, kernels_of(kIsa)); }
  static void geglu(const GegluArgs& a) { run_geglu(a, kernels_of(kIsa)); }
  static void softmax(const SoftmaxArgs& a) { run_softmax(a, kernels_of(kIsa)); }
  static void paged_attention(const PagedAttentionArgs& a) {
    run_paged_attention(a, kernels_of(kIsa));
  }

  static OpTable table() {
    OpTable t;
    t.backend = kIsa == CpuIsa::kScalar ? "cpu-scalar"
                : kIsa == CpuIsa::kAvx2 ? "cpu-avx2"
                                        : "cpu-avx512";
    t.embedding = run_embedding;
    t.rms_norm = rms_norm;
    t.add_rms_norm = add_rms_norm;
    t.matmul = matmul;
    t.rope = run_rope;
    t.attention = attention;
    t.geglu = geglu;
    t.softmax = softmax;
    t.top_k = run_top_k;
    t.softcap = run_softcap;
    t.add = run_add;
    t.scale = run_scale;
    t.cache_write = run_cache_write;
    t.paged_attention = paged_attention;
    return t;
  }
};

void check_supported(CpuIsa isa) {
  SLUICE_CHECK(isa_supported(isa),
               "the CPU backend's {} kernels cannot run on this CPU (it "
               "supports up to {})",
               isa_name(isa), isa_name(detected_isa()));
}

}  // namespace

const IsaKernels& isa_kernels(CpuIsa isa) {
  check_supported(isa);
  return kernels_of(isa);
}

const OpTable& cpu_ops_for_isa(CpuIsa isa) {
  check_supported(isa);
  static const OpTable scalar = Bound<CpuIsa::kScalar>::table();
  static const OpTable avx2 = Bound<CpuIsa::kAvx2>::table();
  static const OpTable avx512 = Bound<CpuIsa::kAvx512>::table();
  switch (isa) {
    case CpuIsa::kScalar:
      return scalar;
    case CpuIsa::kAvx2:
      return avx2;
    case CpuIsa::kAvx512:
      return avx512;
  }
  return scalar;
}

}  // namespace sluice::kernels::cpu

namespace sluice::kernels {

const OpTable& cpu_ops() {
  static const OpTable& table = cpu::cpu_ops_for_isa(cpu::active_isa());
  return table;
}

}  // namespace sluice::kernels
