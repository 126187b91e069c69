#pragma once
// The CPU backend's op tables, one per ISA. cpu_ops() (kernels/ops.h) is the table of
// active_isa(); tests and benchmarks use cpu_ops_for_isa() to run every SIMD path on one
// machine. All tables share the same argument checks, blocking and threading (the process
// pool, kernels/cpu/thread_pool.h); they differ only in the leaf kernels
// (kernels/cpu/isa_kernels.h).
//
// Results do not depend on the number of threads: each output element is computed by the
// same instructions in the same order whichever thread computes it.

#include "kernels/cpu/isa.h"
#include "kernels/cpu/isa_kernels.h"
#include "kernels/ops.h"

namespace sluice::kernels::cpu {

// The op table whose SIMD kernels are those of `isa`. Aborts (SLUICE_CHECK) when this CPU
// cannot run `isa`; check isa_supported() first.
const OpTable& cpu_ops_for_isa(CpuIsa isa);

// The leaf kernels of `isa`, with the same precondition.
const IsaKernels& isa_kernels(CpuIsa isa);

}  // namespace sluice::kernels::cpu
