// The emulator's own checks (cuda_emu.h): every class of fault it claims to show, shown,
// with small kernels written here. The GPU tests pass under the emulator only as far as it
// catches what a GPU would: a barrier that stopped ordering shared memory, a deadlock that
// passed silently or a cp.async that landed early would let a broken kernel through, so
// each of those is a test that fails when the emulator stops catching it.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/half.h"
#include "cuda_emu/cuda_emu_testing.h"
#include "kernels/cuda/mma.cuh"

namespace {

namespace kc = sluice::kernels::cuda;

// Runs `kernel` on the legacy stream and returns the launch's error.
template <typename... Params, typename... Args>
cudaError_t run(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                Args&&... args) {
  (void)cudaGetLastError();
  sluice_emu::launch_kernel(kernel, grid, block, smem_bytes, nullptr, std::forward<Args>(args)...);
  return cudaGetLastError();
}

// ---- __syncthreads ----

// Thread t writes slot t, then reads slot t + 1 (mod the block): correct only when the
// barrier separates the writes from the reads.
__global__ void rotate_kernel(unsigned* out, bool barrier) {
  auto* s = static_cast<unsigned*>(sluice_emu::dynamic_smem());
  const unsigned t = threadIdx.x, n = blockDim.x;
  s[t] = 1000 * blockIdx.x + t;
  if (barrier) __syncthreads();
  out[blockIdx.x * n + t] = s[(t + 1) % n];
}

TEST(CudaEmulator, BarrierOrdersSharedMemory) {
  constexpr int kBlocks = 3, kThreads = 96;
  std::vector<unsigned> out(kBlocks * kThreads, 0);
  ASSERT_EQ(run(rotate_kernel, kBlocks, kThreads, kThreads * 4, out.data(), true), cudaSuccess);
  for (int b = 0; b < kBlocks; ++b) {
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_EQ(out[b * kThreads + t], 1000u * b + (t + 1) % kThreads) << b << " " << t;
    }
  }
}

// Without the barrier some thread reads its neighbour's slot before the neighbour wrote
// it, in either thread order (SLUICE_EMU_ORDER), and sees the poison every block's
// dynamic shared memory starts with, not the previous block's data.
TEST(CudaEmulator, AMissingBarrierReadsPoison) {
  constexpr int kBlocks = 3, kThreads = 96;
  std::vector<unsigned> out(kBlocks * kThreads, 0);
  ASSERT_EQ(run(rotate_kernel, kBlocks, kThreads, kThreads * 4, out.data(), false), cudaSuccess);
  for (int b = 0; b < kBlocks; ++b) {
    int poisoned = 0;
    for (int t = 0; t < kThreads; ++t) {
      const unsigned v = out[b * kThreads + t];
      if (v == 0xFFFFFFFFu) {
        ++poisoned;
      } else {
        EXPECT_EQ(v, 1000u * b + (t + 1) % kThreads);
      }
    }
    EXPECT_GE(poisoned, 1) << "block " << b << ": no read raced its write";
  }
}

// ---- deadlocks and collectives ----

// Half a warp waits at a shuffle for lanes that wait at a barrier.
__global__ void divergent_kernel(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 16) {
    v = __shfl_sync(0xffffffffu, v, 0);
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = v;
}

TEST(CudaEmulator, DeadlockFailsTheLaunchNamingWhereThreadsWait) {
  std::vector<int> out(32, -1);
  ::testing::internal::CaptureStderr();
  const cudaError_t e = run(divergent_kernel, 1, 32, 0, out.data());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(e, cudaErrorLaunchFailure);
  EXPECT_NE(log.find("deadlock"), std::string::npos) << log;
  EXPECT_NE(log.find("16 wait at __shfl_sync (mask 0xffffffff) at emulator_test.cpp:"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("16 wait at __syncthreads at emulator_test.cpp:"), std::string::npos) << log;
  // The emulator serves the next launch.
  std::vector<unsigned> rotated(32);
  EXPECT_EQ(run(rotate_kernel, 1, 32, 32 * 4, rotated.data(), true), cudaSuccess);
  EXPECT_EQ(rotated[31], 0u);
}

// Every lane names only its neighbour in the mask: a shuffle from outside its own mask.
__global__ void bad_mask_kernel(int* out) {
  const unsigned lane = threadIdx.x % 32;
  out[threadIdx.x] = __shfl_xor_sync(1u << ((lane + 1) % 32), 1, 1);
}

TEST(CudaEmulator, ShuffleFromOutsideItsMaskFails) {
  std::vector<int> out(32);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run(bad_mask_kernel, 1, 32, 0, out.data()), cudaErrorLaunchFailure);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("__shfl_xor_sync from a lane outside its own mask"), std::string::npos) << log;
}

// Warp collectives give each lane its segment's answer.
__global__ void collectives_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  int* o = out + threadIdx.x * 5;
  o[0] = __shfl_sync(0xffffffffu, lane * 3, 5, 8);  // lane 5 of each 8-lane segment
  o[1] = __shfl_xor_sync(0xffffffffu, lane, 1);
  o[2] = __shfl_up_sync(0xffffffffu, lane, 2);     // lanes 0, 1 keep their own
  o[3] = __shfl_down_sync(0xffffffffu, lane, 31);  // only lane 0 receives
  o[4] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
}

TEST(CudaEmulator, WarpCollectivesFollowTheirSegments) {
  std::vector<int> out(64 * 5);
  ASSERT_EQ(run(collectives_kernel, 1, 64, 0, out.data()), cudaSuccess);
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32;
    const int* o = out.data() + t * 5;
    EXPECT_EQ(o[0], (lane / 8 * 8 + 5) * 3) << t;
    EXPECT_EQ(o[1], lane ^ 1) << t;
    EXPECT_EQ(o[2], lane < 2 ? lane : lane - 2) << t;
    EXPECT_EQ(o[3], lane == 0 ? 31 : lane) << t;
    EXPECT_EQ(static_cast<unsigned>(o[4]), ballot) << t;
  }
}

// ---- cp.async ----

// Each thread copies 16 bytes in each of two groups, then reads both destinations before
// waiting, after waiting for all but the last group, and after waiting for all.
__global__ void cp_async_kernel(const uint32_t* src, uint32_t* seen) {
  auto* s = static_cast<uint32_t*>(sluice_emu::dynamic_smem());
  const unsigned t = threadIdx.x, n = blockDim.x;
  kc::cp_async16(s + 4 * t, src + 4 * t, true);
  kc::cp_async_commit();
  kc::cp_async16(s + 4 * (n + t), src + 4 * (n + t), true);
  kc::cp_async_commit();
  uint32_t* o = seen + 6 * t;
  o[0] = s[4 * t];
  o[1] = s[4 * (n + t)];
  kc::cp_async_wait<1>();
  o[2] = s[4 * t];
  o[3] = s[4 * (n + t)];
  kc::cp_async_wait<0>();
  o[4] = s[4 * t];
  o[5] = s[4 * (n + t)];
}

TEST(CudaEmulator, CpAsyncLandsAtItsWaitGroup) {
  constexpr int kThreads = 64;
  alignas(16) static uint32_t src[2 * kThreads * 4];
  for (int i = 0; i < 2 * kThreads * 4; ++i) src[i] = 7u * i + 1;
  std::vector<uint32_t> seen(kThreads * 6);
  ASSERT_EQ(run(cp_async_kernel, 1, kThreads, sizeof(src), src, seen.data()), cudaSuccess);
  for (int t = 0; t < kThreads; ++t) {
    const uint32_t* o = seen.data() + 6 * t;
    const uint32_t first = src[4 * t], second = src[4 * (kThreads + t)];
    EXPECT_EQ(o[0], 0xFFFFFFFFu) << "a copy landed before its wait, thread " << t;
    EXPECT_EQ(o[1], 0xFFFFFFFFu) << t;
    EXPECT_EQ(o[2], first) << t;
    EXPECT_EQ(o[3], 0xFFFFFFFFu) << "wait_group 1 landed the last group, thread " << t;
    EXPECT_EQ(o[4], first) << t;
    EXPECT_EQ(o[5], second) << t;
  }
}

__global__ void cp_async_misaligned_kernel(const uint32_t* src) {
  auto* s = static_cast<uint32_t*>(sluice_emu::dynamic_smem());
  kc::cp_async16(s + 4 * threadIdx.x, src + 4 * threadIdx.x + 1, true);  // 4 bytes off
  kc::cp_async_commit();
  kc::cp_async_wait<0>();
}

TEST(CudaEmulator, MisalignedCpAsyncFails) {
  alignas(16) static uint32_t src[4 * 32 + 4];
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run(cp_async_misaligned_kernel, 1, 32, 4 * 32 * 4, src), cudaErrorLaunchFailure);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("not 16-byte aligned"), std::string::npos) << log;
}

// ---- ldmatrix and mma.sync against the fragment layouts of mma.cuh ----

// One warp: A (16 x 16, row-major) and B^T (8 x 16, row n holds column n of B) in shared
// memory; fragments loaded by ldmatrix and element by element from the documented layout
// must agree, and D = A B in the C layout.
__global__ void mma_kernel(const uint16_t* a_in, const uint16_t* bt_in, float* d, int* agree) {
  alignas(16) __shared__ uint16_t a[16 * 16];
  alignas(16) __shared__ uint16_t bt[16 * 16];  // rows 8..15 unused
  const int lane = static_cast<int>(threadIdx.x);
  for (int i = lane; i < 256; i += 32) {
    a[i] = a_in[i];
    bt[i] = i < 128 ? bt_in[i] : 0;
  }
  __syncwarp();
  const int g = lane / 4, q = lane % 4;
  auto pair = [](const uint16_t* m, int row, int col) {
    return static_cast<uint32_t>(m[row * 16 + col]) | static_cast<uint32_t>(m[row * 16 + col + 1])
                                                          << 16;
  };
  const uint32_t a_ref[4] = {pair(a, g, 2 * q), pair(a, g + 8, 2 * q), pair(a, g, 2 * q + 8),
                             pair(a, g + 8, 2 * q + 8)};
  const uint32_t b0 = pair(bt, g, 2 * q), b1 = pair(bt, g, 2 * q + 8);
  // Lane l names row l % 8 of matrix l / 8: matrices (rows 0-7 | 8-15) x (cols 0-7 | 8-15).
  const int m = lane / 8;
  uint32_t a_frag[4];
  kc::ldmatrix_x4(a_frag, a + (lane % 8 + 8 * (m % 2)) * 16 + 8 * (m / 2));
  // B^T rows as matrices 0 and 1 (columns 0-7, 8-15): registers 0 and 1 are b0 and b1.
  uint32_t b_frag[4];
  kc::ldmatrix_x4(b_frag, bt + (lane % 8) * 16 + 8 * (m % 2));
  int ok = 1;
  for (int i = 0; i < 4; ++i) ok &= a_frag[i] == a_ref[i];
  ok &= b_frag[0] == b0 && b_frag[1] == b1;
  agree[lane] = ok;
  float c[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  kc::mma_bf16(c, a_frag, b0, b1);
  d[g * 8 + 2 * q] = c[0];
  d[g * 8 + 2 * q + 1] = c[1];
  d[(g + 8) * 8 + 2 * q] = c[2];
  d[(g + 8) * 8 + 2 * q + 1] = c[3];
}

TEST(CudaEmulator, LdmatrixAndMmaFollowTheFragmentLayouts) {
  // Small integers: every product and sum is exact in f32, so D must match exactly.
  std::vector<uint16_t> a(256), bt(128);
  std::vector<float> af(256), btf(128);
  for (int i = 0; i < 256; ++i) af[i] = static_cast<float>((i * 7) % 11 - 5);
  for (int i = 0; i < 128; ++i) btf[i] = static_cast<float>((i * 5) % 9 - 4);
  for (int i = 0; i < 256; ++i) a[i] = sluice::f32_to_bf16(af[i]);
  for (int i = 0; i < 128; ++i) bt[i] = sluice::f32_to_bf16(btf[i]);
  std::vector<float> d(128, -1.0f);
  std::vector<int> agree(32, 0);
  ASSERT_EQ(run(mma_kernel, 1, 32, 0, a.data(), bt.data(), d.data(), agree.data()), cudaSuccess);
  for (int l = 0; l < 32; ++l) EXPECT_EQ(agree[l], 1) << "lane " << l;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      float want = 0.5f;
      for (int k = 0; k < 16; ++k) want += af[i * 16 + k] * btf[j * 16 + k];
      EXPECT_EQ(d[i * 8 + j], want) << "D[" << i << "][" << j << "]";
    }
  }
}

// ---- launches, memory, shared-memory limits, graphs ----

__global__ void fill_kernel(int* out, int v) { out[blockIdx.x * blockDim.x + threadIdx.x] = v; }

TEST(CudaEmulator, BadLaunchShapesAreConfigurationErrors) {
  std::vector<int> out(2048, 0);
  EXPECT_EQ(run(fill_kernel, 1, 1025, 0, out.data(), 1), cudaErrorInvalidConfiguration);
  EXPECT_EQ(run(fill_kernel, 0, 32, 0, out.data(), 1), cudaErrorInvalidConfiguration);
  EXPECT_EQ(out[0], 0) << "a refused launch ran";
  EXPECT_EQ(run(fill_kernel, 2, 1024, 0, out.data(), 3), cudaSuccess);
  EXPECT_EQ(out[2047], 3);
}

TEST(CudaEmulator, DynamicSharedMemoryAbove48KiBNeedsTheAttribute) {
  std::vector<int> out(32, 0);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run(fill_kernel, 1, 32, 64 << 10, out.data(), 1), cudaErrorInvalidValue);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("above its limit"), std::string::npos);
  EXPECT_EQ(out[0], 0);
  ASSERT_EQ(
      cudaFuncSetAttribute(fill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10),
      cudaSuccess);
  EXPECT_EQ(run(fill_kernel, 1, 32, 64 << 10, out.data(), 2), cudaSuccess);
  EXPECT_EQ(out[31], 2);
  EXPECT_EQ(
      cudaFuncSetAttribute(fill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 << 10),
      cudaErrorInvalidValue)
      << "above the device's 227 KiB opt-in limit";
  (void)cudaGetLastError();
}

TEST(CudaEmulator, DeviceMemoryIsPoisonedCountedAndBounded) {
  size_t free0 = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 1000), cudaSuccess);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  float f;
  std::memcpy(&f, p, 4);
  EXPECT_TRUE(std::isnan(f)) << "fresh device memory reads as NaN";
  size_t free1 = 0;
  ASSERT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  EXPECT_EQ(free0 - free1, 1024u) << "allocations are counted in 256-byte units";
  void* huge = reinterpret_cast<void*>(1);
  EXPECT_EQ(cudaMalloc(&huge, total), cudaErrorMemoryAllocation);
  EXPECT_EQ(huge, nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  size_t free2 = 0;
  ASSERT_EQ(cudaMemGetInfo(&free2, &total), cudaSuccess);
  EXPECT_EQ(free2, free0);
  int local = 0;
  EXPECT_EQ(cudaFree(&local), cudaErrorInvalidValue) << "not an allocation";
  (void)cudaGetLastError();
}

TEST(CudaEmulator, CaptureRecordsAndReplaysAndAllocationInvalidatesIt) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  std::vector<int> out(64, 0);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  sluice_emu::launch_kernel(fill_kernel, dim3(2), dim3(32), 0, s, out.data(), 9);
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(out[0], 0) << "a captured launch ran at capture";
  cudaGraphExec_t exec;
  size_t free0 = 0, free1 = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
  {
    // On a full device the executable graph cannot be made: its nodes take device memory.
    sluice_emu::hold_device_memory(static_cast<int64_t>(free0));
    cudaGraphExec_t none = nullptr;
    EXPECT_EQ(cudaGraphInstantiate(&none, graph, 0), cudaErrorMemoryAllocation);
    EXPECT_EQ(none, nullptr);
    (void)cudaGetLastError();
    sluice_emu::hold_device_memory(-static_cast<int64_t>(free0));
  }
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  EXPECT_EQ(free0 - free1, 256u) << "one node, 256 bytes";
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  EXPECT_EQ(out[63], 9);
  out.assign(64, 0);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  EXPECT_EQ(out[0], 9) << "a replay runs the launch again";
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  ASSERT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  EXPECT_EQ(free1, free0);

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 256), cudaErrorStreamCaptureUnsupported);
  cudaStreamCaptureStatus status;
  ASSERT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusInvalidated);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

// ---- misaligned vector accesses (the alignment sanitizer, tests/cuda_emu/CMakeLists.txt) ----

__global__ void misaligned_float4_kernel(const float* in, float* out) {
  // A view that starts one float into an allocation: its float4 loads are 4 bytes off.
  const float4 v = *reinterpret_cast<const float4*>(in + 1 + 4 * threadIdx.x);
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

TEST(CudaEmulatorDeathTest, MisalignedVectorLoadAborts) {
  alignas(16) static float in[4 * 32 + 8];
  static float out[32];
  for (float& v : in) v = 1.0f;
  EXPECT_DEATH((void)run(misaligned_float4_kernel, 1, 32, 0, in, out),
               "misaligned address 0x[0-9a-f]+ for type 'const (struct )?float4', which "
               "requires 16 byte alignment");
}

}  // namespace
