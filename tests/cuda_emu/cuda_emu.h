#pragma once
// The CUDA emulator's prelude, force-included (-include) ahead of every translation unit of
// the emulated GPU build (gpu_emu_tests). With it the project's CUDA sources (each .cu file
// included from a generated .cpp) compile as plain C++ and run on the CPU:
//   - every CUDA thread of a block is a fiber; the blocks of a grid run one after another on
//     the launching thread (cuda_emu_runtime.cpp);
//   - __syncthreads and the warp collectives (shuffles, votes, ldmatrix, mma.sync) are
//     rendezvous of fibers: a collective completes when every lane its mask names has
//     arrived, and the scheduler reports a deadlock (a divergent barrier, a lane missing
//     from a shuffle) instead of hanging;
//   - __shared__ variables are function statics (one block runs at a time), dynamic shared
//     memory is a per-launch buffer, device memory is host memory;
//   - cp.async copies land when the issuing thread waits for their group, not before, so a
//     read that does not wait sees stale data as it could on a GPU.
// What it cannot show: timing, occupancy, register or memory-ordering effects. Misaligned
// vector accesses, which x86 tolerates, abort through the alignment sanitizer every
// emulated build is compiled with. It runs the kernels' index math and control flow
// exactly, which is what the GPU tests check when no GPU is lent.
//
// This header is C++ that stands in for nvcc's device dialect; kernel sources test
// SLUICE_CUDA_EMU only where the dialect cannot be imitated (inline PTX, extern __shared__).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

namespace sluice_emu {

// The coordinates of the fiber that is running.
struct ThreadCoords {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
const ThreadCoords& coords();

// A warp collective: the lanes of `mask` meet, then each lane's `out` holds its result.
enum class WarpOp : int {
  kShflIdx,
  kShflXor,
  kShflUp,
  kShflDown,
  kBallot,
  kAny,
  kAll,
  kSyncWarp,
  kLdMatrix,       // in[0]: the lane's row address; out[0..3]: the x4 fragment registers
  kLdMatrixTrans,  // the same, transposed
  kMmaBf16,        // in[0..3] a, in[4..5] b, in[6..9] c (f32 bits); out[0..3] d (f32 bits)
};
struct Collective {
  WarpOp op;
  unsigned mask;
  int arg;    // shuffles: source lane, xor mask or delta
  int width;  // shuffles: segment width
  uint64_t in[10];
  uint64_t out[4];
  std::source_location where;  // the call, for the deadlock report
};
void warp_collective(Collective& c);
void syncthreads(std::source_location where);
unsigned activemask();
void* dynamic_smem();
void cp_async16(void* dst, const void* src, bool valid);
void cp_async_commit();
void cp_async_wait(int groups_left);

// Runs `body` as kernel `kernel` on grid x block with `smem_bytes` of dynamic shared memory,
// or records it when `stream` is capturing. Errors (bad configuration, a deadlock) become the
// runtime's last error, as a failed launch does.
void launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
            std::function<void()> body);

// Runs `op` now, or records it when `stream` is capturing: every stream operation of the
// emulated runtime (launches, copies, sets, events) and libraries (cuBLASLt's GEMM).
void enqueue(cudaStream_t stream, std::function<void()> op);

template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, Args&&... args) {
  // The arguments are converted to the parameter types now and copied, as a launch does.
  std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  launch(reinterpret_cast<const void*>(kernel), grid, block, smem_bytes, stream,
         [kernel, params] { std::apply(kernel, params); });
}

template <typename T>
T shuffle(WarpOp op, unsigned mask, T v, int arg, int width, std::source_location where) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  Collective c{};
  c.op = op;
  c.mask = mask;
  c.arg = arg;
  c.width = width;
  c.where = where;
  std::memcpy(&c.in[0], &v, sizeof(T));
  warp_collective(c);
  T r;
  std::memcpy(&r, &c.out[0], sizeof(T));
  return r;
}

inline unsigned vote(WarpOp op, unsigned mask, bool pred, std::source_location where) {
  Collective c{};
  c.op = op;
  c.where = where;
  c.mask = mask;
  c.in[0] = pred ? 1 : 0;
  warp_collective(c);
  return static_cast<unsigned>(c.out[0]);
}

}  // namespace sluice_emu

// ---- nvcc's execution-space and storage keywords as plain C++ ----
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__ static
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)

// ---- built-in variables ----
#define threadIdx (::sluice_emu::coords().thread_idx)
#define blockIdx (::sluice_emu::coords().block_idx)
#define blockDim (::sluice_emu::coords().block_dim)
#define gridDim (::sluice_emu::coords().grid_dim)

// ---- synchronization and warp collectives ----
#define SLUICE_EMU_HERE std::source_location where = std::source_location::current()
inline void __syncthreads(SLUICE_EMU_HERE) { sluice_emu::syncthreads(where); }
inline void __syncwarp(unsigned mask = 0xffffffffu, SLUICE_EMU_HERE) {
  sluice_emu::vote(sluice_emu::WarpOp::kSyncWarp, mask, true, where);
}
inline void __threadfence() {}
inline void __threadfence_block() {}
inline unsigned __activemask() { return sluice_emu::activemask(); }
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32, SLUICE_EMU_HERE) {
  return sluice_emu::shuffle(sluice_emu::WarpOp::kShflIdx, mask, v, src, width, where);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, SLUICE_EMU_HERE) {
  return sluice_emu::shuffle(sluice_emu::WarpOp::kShflXor, mask, v, lane_mask, width, where);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, SLUICE_EMU_HERE) {
  return sluice_emu::shuffle(sluice_emu::WarpOp::kShflUp, mask, v, static_cast<int>(delta), width,
                             where);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, SLUICE_EMU_HERE) {
  return sluice_emu::shuffle(sluice_emu::WarpOp::kShflDown, mask, v, static_cast<int>(delta), width,
                             where);
}
inline unsigned __ballot_sync(unsigned mask, int pred, SLUICE_EMU_HERE) {
  return sluice_emu::vote(sluice_emu::WarpOp::kBallot, mask, pred != 0, where);
}
inline int __any_sync(unsigned mask, int pred, SLUICE_EMU_HERE) {
  return static_cast<int>(sluice_emu::vote(sluice_emu::WarpOp::kAny, mask, pred != 0, where));
}
inline int __all_sync(unsigned mask, int pred, SLUICE_EMU_HERE) {
  return static_cast<int>(sluice_emu::vote(sluice_emu::WarpOp::kAll, mask, pred != 0, where));
}

// ---- atomics: fibers never run at the same time, so plain read-modify-writes are atomic ----
namespace sluice_emu {
template <typename T, typename F>
T read_modify_write(T* p, F f) {
  const T old = *p;
  *p = f(old);
  return old;
}
}  // namespace sluice_emu
template <typename T>
T atomicAdd(T* p, std::type_identity_t<T> v) {
  return sluice_emu::read_modify_write(p, [v](T o) { return static_cast<T>(o + v); });
}
template <typename T>
T atomicSub(T* p, std::type_identity_t<T> v) {
  return sluice_emu::read_modify_write(p, [v](T o) { return static_cast<T>(o - v); });
}
template <typename T>
T atomicMin(T* p, std::type_identity_t<T> v) {
  return sluice_emu::read_modify_write(p, [v](T o) { return v < o ? v : o; });
}
template <typename T>
T atomicMax(T* p, std::type_identity_t<T> v) {
  return sluice_emu::read_modify_write(p, [v](T o) { return v > o ? v : o; });
}
template <typename T>
T atomicExch(T* p, std::type_identity_t<T> v) {
  return sluice_emu::read_modify_write(p, [v](T) { return v; });
}
template <typename T>
T atomicCAS(T* p, std::type_identity_t<T> compare, std::type_identity_t<T> v) {
  return sluice_emu::read_modify_write(p, [=](T o) { return o == compare ? v : o; });
}

// ---- loads and stores with cache hints: plain ones here ----
template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
T __ldcs(const T* p) {
  return *p;
}
template <typename T>
T __ldcg(const T* p) {
  return *p;
}
template <typename T>
T __ldlu(const T* p) {
  return *p;
}
template <typename T>
void __stcs(T* p, T v) {
  *p = v;
}
template <typename T>
void __stcg(T* p, T v) {
  *p = v;
}

// ---- bit casts and arithmetic intrinsics ----
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __clzll(long long v) {
  return v == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(v));
}
inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}

// Device code calls min, max and the float classifiers unqualified, as CUDA's headers allow.
template <typename A, typename B>
requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B> std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <typename A, typename B>
requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B> std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
using std::isfinite;
using std::isinf;
using std::isnan;

// The runtime's C++ forms that nvcc alone declares.
template <typename T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
