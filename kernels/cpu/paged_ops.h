#pragma once
// Internal to kernels/cpu: the CPU implementations of the paged KV cache ops (contracts in
// kernels/ops.h, CacheWriteArgs and PagedAttentionArgs). cpu_ops.cpp binds them into the
// per-ISA op tables, as it does for the ops of ops_impl.h.

#include "kernels/cpu/isa_kernels.h"
#include "kernels/ops.h"

namespace sluice::kernels::cpu {

// Copies the K and V rows of each token into its slot (kernels/cpu/cache_write.cpp).
void run_cache_write(const CacheWriteArgs& args);

// Attention of a flattened mixed batch over the paged cache (kernels/cpu/paged_attention.cpp).
void run_paged_attention(const PagedAttentionArgs& args, const IsaKernels& kernels);

}  // namespace sluice::kernels::cpu
