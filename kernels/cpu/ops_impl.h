#pragma once
// Internal to kernels/cpu: the CPU implementation of each op, given the leaf kernels of one
// ISA (cpu_ops.cpp binds them into the per-ISA op tables). Contracts are those in
// kernels/ops.h.

#include "kernels/cpu/isa_kernels.h"
#include "kernels/ops.h"

namespace sluice::kernels::cpu {

void run_embedding(const EmbeddingArgs& args);
void run_rms_norm(const RmsNormArgs& args, const IsaKernels& kernels);
void run_add_rms_norm(const AddRmsNormArgs& args, const IsaKernels& kernels);
void run_matmul(const MatmulArgs& args, const IsaKernels& kernels);
void run_rope(const RopeArgs& args);
void run_attention(const AttentionArgs& args, const IsaKernels& kernels);
void run_geglu(const GegluArgs& args, const IsaKernels& kernels);
void run_softmax(const SoftmaxArgs& args, const IsaKernels& kernels);
void run_top_k(const TopKArgs& args);
void run_softcap(const SoftcapArgs& args);
void run_add(const AddArgs& args);
void run_scale(const ScaleArgs& args);

// Elementwise ops hand each task at least this many elements (below that, the wake-up
// costs more than the work).
inline constexpr int64_t kMinElementsPerTask = 16384;

}  // namespace sluice::kernels::cpu
