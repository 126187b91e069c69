// The CUDA emulator's executor and the part of the CUDA runtime API the project calls
// (cuda_emu.h says what it is for and what it cannot show).
//
// Execution: a launch runs its grid on the calling thread, one block at a time, under one
// process-wide lock (kernels' __shared__ variables are statics). A block is a set of fibers,
// one per CUDA thread, on stacks from one mapping; the scheduler runs each runnable fiber
// until it finishes or blocks at a rendezvous (__syncthreads, a warp collective), then
// completes what every participant has reached. Nothing runnable and nothing completable is
// a deadlock: the launch fails with a message naming the waiting threads.
//
// Runtime: device memory is host memory counted against an emulated capacity
// (SLUICE_EMU_DEVICE_MEMORY_MB, default 2048), fresh allocations are filled with 0xFF (NaN as
// f32 and bf16) so reads of never-written memory show, streams run their work at once unless
// capturing, captures record launches, copies and sets into a graph that a launch replays,
// and the one device reports itself as sm_90 with 132 SMs.

#include <cuda_runtime_api.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)  // fiber switches announced to AddressSanitizer
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SLUICE_EMU_ASAN 1
#else
#define SLUICE_EMU_ASAN 0
#endif

#include "cuda_emu.h"
#include "cuda_emu_testing.h"

// ---- context switch ----
#if defined(__x86_64__)
// Saves the callee-saved registers and the stack pointer of the running context in *from,
// then resumes the context whose stack pointer is `to` (System V x86-64).
extern "C" void sluice_emu_switch(void** from, void* to);
asm(R"(
.text
.globl sluice_emu_switch
.type sluice_emu_switch,@function
sluice_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size sluice_emu_switch,.-sluice_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
#endif

namespace sluice_emu {
namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 << 10;
constexpr size_t kDefaultSmemLimit = 48 << 10;
constexpr size_t kSmemOptinLimit = 227 << 10;

enum class State { kRunnable, kBarrier, kCollective, kDone };

struct CpAsync {
  void* dst;
  const void* src;
  bool valid;
  int group;  // commits issued before it
};

struct Fiber {
  ThreadCoords coords{};
  int linear = 0;
  State state = State::kRunnable;
  Collective* coll = nullptr;
  std::source_location barrier_at;  // the __syncthreads it waits at
  std::vector<CpAsync> copies;
  int commits = 0;
  char* stack = nullptr;
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
};

struct Executor {
  std::vector<Fiber> fibers;
  std::vector<int> warp_arrived;  // lanes of each warp waiting at a collective
  char* stacks = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<unsigned char> smem;
  Fiber* current = nullptr;
  std::string error;  // a failed block: the launch's message
#if defined(__x86_64__)
  void* scheduler_sp = nullptr;
#else
  ucontext_t scheduler;
#endif
  // AddressSanitizer: the scheduler's stack, learnt at a fiber's first entry.
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_bytes = 0;
  void* scheduler_fake_stack = nullptr;
};

std::mutex g_launch_mutex;  // one grid at a time: __shared__ statics, the executor
Executor g_exec;

thread_local cudaError_t t_last_error = cudaSuccess;

[[noreturn]] void fatal(const std::string& what) {
  std::fprintf(stderr, "sluice cuda emulator: %s\n", what.c_str());
  std::abort();
}

Fiber& running() {
  if (g_exec.current == nullptr) fatal("a device function ran outside a kernel");
  return *g_exec.current;
}

std::string thread_name(const Fiber& f) {
  const ThreadCoords& c = f.coords;
  return "block (" + std::to_string(c.block_idx.x) + "," + std::to_string(c.block_idx.y) + "," +
         std::to_string(c.block_idx.z) + ") thread (" + std::to_string(c.thread_idx.x) + "," +
         std::to_string(c.thread_idx.y) + "," + std::to_string(c.thread_idx.z) + ")";
}

// Back to the scheduler from the running fiber (for good when it is done).
void yield_to_scheduler() {
  Fiber& f = running();
#if SLUICE_EMU_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(f.state == State::kDone ? nullptr : &fake_stack,
                                 g_exec.scheduler_stack, g_exec.scheduler_stack_bytes);
#endif
#if defined(__x86_64__)
  sluice_emu_switch(&f.sp, g_exec.scheduler_sp);
#else
  swapcontext(&f.ctx, &g_exec.scheduler);
#endif
#if SLUICE_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

// A failure inside a kernel: record it (the first one) and stop the block.
void kernel_error(const std::string& what) {
  Fiber& f = running();
  if (g_exec.error.empty()) g_exec.error = thread_name(f) + ": " + what;
  f.state = State::kDone;
  yield_to_scheduler();
  fatal("a failed fiber was resumed");
}

void fiber_main() {
#if SLUICE_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_exec.scheduler_stack, &g_exec.scheduler_stack_bytes);
#endif
  (*g_exec.body)();
  running().state = State::kDone;
  yield_to_scheduler();
  fatal("a finished fiber was resumed");
}

void resume(Fiber& f) {
  g_exec.current = &f;
#if SLUICE_EMU_ASAN
  __sanitizer_start_switch_fiber(&g_exec.scheduler_fake_stack, f.stack, kStackBytes);
#endif
#if defined(__x86_64__)
  sluice_emu_switch(&g_exec.scheduler_sp, f.sp);
#else
  swapcontext(&g_exec.scheduler, &f.ctx);
#endif
#if SLUICE_EMU_ASAN
  __sanitizer_finish_switch_fiber(g_exec.scheduler_fake_stack, nullptr, nullptr);
#endif
  g_exec.current = nullptr;
}

void prepare_fiber(Fiber& f) {
  char* top = f.stack + kStackBytes;
#if SLUICE_EMU_ASAN
  // A fiber abandoned mid-block (a failed launch) leaves its frames' red zones poisoned.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  ASAN_UNPOISON_MEMORY_REGION(f.stack + page, kStackBytes - page);
#endif
#if defined(__x86_64__)
  // The frame sluice_emu_switch pops: six registers, then the return address fiber_main
  // starts at, above it a zero as fiber_main's own return address (never used).
  auto* slots = reinterpret_cast<void**>(top) - 8;
  for (int i = 0; i < 6; ++i) slots[i] = nullptr;
  slots[6] = reinterpret_cast<void*>(&fiber_main);
  slots[7] = nullptr;
  f.sp = slots;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, &fiber_main, 0);
#endif
}

char* fiber_stacks() {
  if (g_exec.stacks != nullptr) return g_exec.stacks;
  const size_t bytes = kStackBytes * kMaxThreads;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fatal("cannot map the fiber stacks");
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (int i = 0; i < kMaxThreads; ++i) {  // a guard page under each stack
    mprotect(static_cast<char*>(p) + i * kStackBytes, page, PROT_NONE);
  }
  g_exec.stacks = static_cast<char*>(p);
  return g_exec.stacks;
}

// ---- warp collectives ----

int lane_of(const Fiber& f) { return f.linear % 32; }

float f32_bits(uint64_t b) {
  const uint32_t w = static_cast<uint32_t>(b);
  float v;
  std::memcpy(&v, &w, 4);
  return v;
}
uint64_t bits_f32(float v) {
  uint32_t w;
  std::memcpy(&w, &v, 4);
  return w;
}
float bf16_lo(uint32_t w) { return f32_bits(uint64_t{w & 0xffffu} << 16); }
float bf16_hi(uint32_t w) { return f32_bits(w & 0xffff0000u); }

// Computes the results of a collective whose lanes (all of `mask`, in `lanes`) have arrived.
// Returns an error message, empty when fine.
std::string complete(WarpOp op, unsigned mask, Fiber* const* lanes) {
  auto in = [&](int l) -> Collective& { return *lanes[l]->coll; };
  switch (op) {
    case WarpOp::kShflIdx:
    case WarpOp::kShflXor:
    case WarpOp::kShflUp:
    case WarpOp::kShflDown:
      for (int l = 0; l < 32; ++l) {
        if (!(mask >> l & 1)) continue;
        Collective& c = in(l);
        const int w = c.width;
        if (w <= 0 || w > 32 || (w & (w - 1)) != 0) {
          return "shuffle width " + std::to_string(w) + " is not a power of two <= 32";
        }
        const int base = l & ~(w - 1);
        int src = l;
        switch (op) {
          case WarpOp::kShflIdx:
            src = base + (c.arg & (w - 1));
            break;
          case WarpOp::kShflXor:
            src = l ^ c.arg;
            break;
          case WarpOp::kShflUp:
            src = (l - base) >= c.arg ? l - c.arg : l;
            break;
          default:
            src = (l - base) + c.arg < w ? l + c.arg : l;
            break;
        }
        if (src < base || src >= base + w) src = l;
        if (!(mask >> src & 1)) {
          return "lane " + std::to_string(l) + " shuffles from lane " + std::to_string(src) +
                 ", which is not in the mask";
        }
        c.out[0] = in(src).in[0];
      }
      return {};
    case WarpOp::kBallot:
    case WarpOp::kAny:
    case WarpOp::kAll:
    case WarpOp::kSyncWarp: {
      uint32_t ballot = 0;
      for (int l = 0; l < 32; ++l) {
        if ((mask >> l & 1) && in(l).in[0] != 0) ballot |= 1u << l;
      }
      const uint64_t r = op == WarpOp::kBallot ? ballot
                         : op == WarpOp::kAny  ? (ballot != 0 ? 1 : 0)
                         : op == WarpOp::kAll  ? (ballot == mask ? 1 : 0)
                                               : 0;
      for (int l = 0; l < 32; ++l) {
        if (mask >> l & 1) in(l).out[0] = r;
      }
      return {};
    }
    case WarpOp::kLdMatrix:
    case WarpOp::kLdMatrixTrans: {
      if (mask != 0xffffffffu) return "ldmatrix needs all 32 lanes";
      const unsigned char* rows[32];
      for (int l = 0; l < 32; ++l) {
        rows[l] = reinterpret_cast<const unsigned char*>(in(l).in[0]);
        if (reinterpret_cast<uintptr_t>(rows[l]) % 16 != 0) {
          return "ldmatrix: lane " + std::to_string(l) + "'s row address is not 16-byte aligned";
        }
      }
      for (int l = 0; l < 32; ++l) {
        const int g = l / 4, q = l % 4;
        for (int i = 0; i < 4; ++i) {
          uint16_t lo, hi;
          if (op == WarpOp::kLdMatrix) {
            std::memcpy(&lo, rows[8 * i + g] + 4 * q, 2);
            std::memcpy(&hi, rows[8 * i + g] + 4 * q + 2, 2);
          } else {
            std::memcpy(&lo, rows[8 * i + 2 * q] + 2 * g, 2);
            std::memcpy(&hi, rows[8 * i + 2 * q + 1] + 2 * g, 2);
          }
          in(l).out[i] = uint64_t{lo} | (uint64_t{hi} << 16);
        }
      }
      return {};
    }
    case WarpOp::kMmaBf16: {
      if (mask != 0xffffffffu) return "mma.sync needs all 32 lanes";
      float A[16][16], B[16][8], C[16][8];
      for (int l = 0; l < 32; ++l) {
        const int g = l / 4, q = l % 4;
        const Collective& c = in(l);
        const uint32_t a[4] = {static_cast<uint32_t>(c.in[0]), static_cast<uint32_t>(c.in[1]),
                               static_cast<uint32_t>(c.in[2]), static_cast<uint32_t>(c.in[3])};
        A[g][2 * q] = bf16_lo(a[0]), A[g][2 * q + 1] = bf16_hi(a[0]);
        A[g + 8][2 * q] = bf16_lo(a[1]), A[g + 8][2 * q + 1] = bf16_hi(a[1]);
        A[g][2 * q + 8] = bf16_lo(a[2]), A[g][2 * q + 9] = bf16_hi(a[2]);
        A[g + 8][2 * q + 8] = bf16_lo(a[3]), A[g + 8][2 * q + 9] = bf16_hi(a[3]);
        const uint32_t b0 = static_cast<uint32_t>(c.in[4]), b1 = static_cast<uint32_t>(c.in[5]);
        B[2 * q][g] = bf16_lo(b0), B[2 * q + 1][g] = bf16_hi(b0);
        B[2 * q + 8][g] = bf16_lo(b1), B[2 * q + 9][g] = bf16_hi(b1);
        C[g][2 * q] = f32_bits(c.in[6]), C[g][2 * q + 1] = f32_bits(c.in[7]);
        C[g + 8][2 * q] = f32_bits(c.in[8]), C[g + 8][2 * q + 1] = f32_bits(c.in[9]);
      }
      auto d = [&](int r, int n) {
        double s = C[r][n];
        for (int k = 0; k < 16; ++k) s += static_cast<double>(A[r][k]) * B[k][n];
        return bits_f32(static_cast<float>(s));
      };
      for (int l = 0; l < 32; ++l) {
        const int g = l / 4, q = l % 4;
        Collective& c = in(l);
        c.out[0] = d(g, 2 * q), c.out[1] = d(g, 2 * q + 1);
        c.out[2] = d(g + 8, 2 * q), c.out[3] = d(g + 8, 2 * q + 1);
      }
      return {};
    }
  }
  return "unknown warp collective";
}

// The fiber `f` has just arrived at a collective: complete it when all lanes of its mask
// are there with the same operation.
void try_complete(Fiber& f) {
  const Collective& c = *f.coll;
  const int warp_base = f.linear - lane_of(f);
  if (g_exec.warp_arrived[f.linear / 32] < __builtin_popcount(c.mask)) return;  // the common case
  Fiber* lanes[32] = {};
  for (int l = 0; l < 32; ++l) {
    if (!(c.mask >> l & 1)) continue;
    const int t = warp_base + l;
    if (t >= static_cast<int>(g_exec.fibers.size())) {
      if (g_exec.error.empty()) {
        g_exec.error = thread_name(f) + ": a warp collective's mask names lane " +
                       std::to_string(l) + ", beyond the block";
      }
      return;
    }
    Fiber& o = g_exec.fibers[t];
    if (o.state != State::kCollective || o.coll->op != c.op || o.coll->mask != c.mask) return;
    lanes[l] = &o;
  }
  const std::string err = complete(c.op, c.mask, lanes);
  if (!err.empty() && g_exec.error.empty()) g_exec.error = thread_name(f) + ": " + err;
  for (int l = 0; l < 32; ++l) {
    if (lanes[l] != nullptr) {
      lanes[l]->state = State::kRunnable;
      lanes[l]->coll = nullptr;
      --g_exec.warp_arrived[f.linear / 32];
    }
  }
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kShflIdx:
      return "__shfl_sync";
    case WarpOp::kShflXor:
      return "__shfl_xor_sync";
    case WarpOp::kShflUp:
      return "__shfl_up_sync";
    case WarpOp::kShflDown:
      return "__shfl_down_sync";
    case WarpOp::kBallot:
      return "__ballot_sync";
    case WarpOp::kAny:
      return "__any_sync";
    case WarpOp::kAll:
      return "__all_sync";
    case WarpOp::kSyncWarp:
      return "__syncwarp";
    case WarpOp::kLdMatrix:
      return "ldmatrix";
    case WarpOp::kLdMatrixTrans:
      return "ldmatrix.trans";
    case WarpOp::kMmaBf16:
      return "mma.sync";
  }
  return "?";
}

std::string where(const std::source_location& at) {
  std::string file = at.file_name();
  const size_t slash = file.rfind('/');
  if (slash != std::string::npos) file = file.substr(slash + 1);
  return file + ":" + std::to_string(at.line());
}

std::string deadlock_report() {
  // Waiters grouped by where they wait: the collectives first, they are the odd ones.
  struct Group {
    std::string key;
    int n;
    std::string first;
  };
  std::vector<Group> groups;
  auto count = [&](const std::string& key, const Fiber& f) {
    for (Group& g : groups) {
      if (g.key == key) {
        ++g.n;
        return;
      }
    }
    groups.push_back(Group{key, 1, thread_name(f)});
  };
  for (const Fiber& f : g_exec.fibers) {
    if (f.state != State::kCollective) continue;
    char mask[16];
    std::snprintf(mask, sizeof(mask), "%08x", f.coll->mask);
    count(std::string(op_name(f.coll->op)) + " (mask 0x" + mask + ") at " + where(f.coll->where),
          f);
  }
  for (const Fiber& f : g_exec.fibers) {
    if (f.state == State::kBarrier) count("__syncthreads at " + where(f.barrier_at), f);
  }
  std::string s = "deadlock: no thread can proceed;";
  for (const Group& g : groups) {
    s.append(" ").append(std::to_string(g.n)).append(" wait at ").append(g.key);
    s.append(" (the first: ").append(g.first).append(");");
  }
  return s;
}

// SLUICE_EMU_ORDER=reverse: run a block's threads from the last to the first, so that the
// later warps run ahead of the earlier ones (the default order lets the earlier ones run
// ahead); a race between warps shows in one order or the other.
bool reverse_order() {
  static const bool reverse = [] {
    const char* env = std::getenv("SLUICE_EMU_ORDER");
    return env != nullptr && std::string(env) == "reverse";
  }();
  return reverse;
}

// Runs one block to completion. Returns false (g_exec.error set) when it failed.
bool run_block(dim3 grid, dim3 block, uint3 block_idx) {
  const int n = static_cast<int>(block.x * block.y * block.z);
  g_exec.fibers.resize(n);
  g_exec.warp_arrived.assign((n + 31) / 32, 0);
  // Every block's dynamic shared memory starts as NaN: a read before the block wrote it
  // shows, instead of seeing the previous block's data.
  std::fill(g_exec.smem.begin(), g_exec.smem.end(), 0xFF);
  char* stacks = fiber_stacks();
  for (int t = 0; t < n; ++t) {
    Fiber& f = g_exec.fibers[t];
    f.coords.thread_idx =
        uint3{static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
              static_cast<unsigned>(t / (block.x * block.y))};
    f.coords.block_idx = block_idx;
    f.coords.block_dim = block;
    f.coords.grid_dim = grid;
    f.linear = t;
    f.state = State::kRunnable;
    f.coll = nullptr;
    f.copies.clear();
    f.commits = 0;
    f.stack = stacks + static_cast<size_t>(t) * kStackBytes;
    prepare_fiber(f);
  }
  const bool reverse = reverse_order();
  for (;;) {
    bool ran = false;
    for (int i = 0; i < n; ++i) {
      Fiber& f = g_exec.fibers[reverse ? n - 1 - i : i];
      if (f.state != State::kRunnable) continue;
      ran = true;
      resume(f);
      if (!g_exec.error.empty()) return false;
      if (f.state == State::kCollective) try_complete(f);
      if (!g_exec.error.empty()) return false;
    }
    if (ran) continue;
    int waiting = 0, at_barrier = 0;
    for (const Fiber& f : g_exec.fibers) {
      if (f.state == State::kDone) continue;
      ++waiting;
      if (f.state == State::kBarrier) ++at_barrier;
    }
    if (waiting == 0) return true;
    if (at_barrier == waiting) {
      for (Fiber& f : g_exec.fibers) {
        if (f.state == State::kBarrier) f.state = State::kRunnable;
      }
      continue;
    }
    g_exec.error = deadlock_report();
    return false;
  }
}

// ---- streams, graphs, events ----

using Op = std::function<void()>;  // a recorded stream operation

}  // namespace
}  // namespace sluice_emu

struct CUstream_st {
  std::thread::id owner;  // the thread that began the capture
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::vector<sluice_emu::Op> captured;
};
struct CUgraph_st {
  std::vector<sluice_emu::Op> ops;
};
struct CUgraphExec_st {
  std::vector<sluice_emu::Op> ops;
  size_t device_bytes = 0;  // what instantiation took of the emulated device's memory
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at{};
};

namespace sluice_emu {
namespace {

std::mutex g_state_mutex;  // streams, allocations, function attributes
std::vector<CUstream_st*> g_capturing;
std::unordered_map<const void*, size_t> g_allocations;
size_t g_allocated = 0;
std::unordered_map<const void*, int> g_max_dynamic_smem;

size_t capacity_bytes() {
  static const size_t bytes = [] {
    const char* env = std::getenv("SLUICE_EMU_DEVICE_MEMORY_MB");
    const long mb = env != nullptr ? std::atol(env) : 2048;
    return static_cast<size_t>(mb > 0 ? mb : 2048) << 20;
  }();
  return bytes;
}

// A call that a capture in progress forbids (allocation, synchronous copies): the capture
// is invalidated, as the runtime does, and the call fails.
bool capture_forbids_sync_call() {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  bool any = false;
  for (CUstream_st* s : g_capturing) {
    if (s->mode == cudaStreamCaptureModeRelaxed) continue;
    if (s->mode == cudaStreamCaptureModeThreadLocal && s->owner != std::this_thread::get_id()) {
      continue;
    }
    s->invalidated = true;
    any = true;
  }
  return any;
}

// Counts `bytes` of the emulated device's memory as taken: false (nothing counted) when they
// do not fit its capacity. Every user of device memory goes through these two.
bool take_device_bytes(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (g_allocated + bytes > capacity_bytes()) return false;
  g_allocated += bytes;
  return true;
}
void give_back_device_bytes(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (bytes > g_allocated) fatal("device memory given back that was never taken");
  g_allocated -= bytes;
}

}  // namespace

void hold_device_memory(int64_t bytes) {
  if (bytes >= 0) {
    if (!take_device_bytes(static_cast<size_t>(bytes))) fatal("held more than the device has");
  } else {
    give_back_device_bytes(static_cast<size_t>(-bytes));
  }
}

namespace {

cudaError_t fail(cudaError_t e) {
  sluice_emu::t_last_error = e;
  return e;
}

void run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
              const std::function<void()>& body) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  g_exec.body = &body;
  g_exec.smem.assign(smem_bytes, 0xFF);
  g_exec.error.clear();
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        if (!run_block(grid, block, uint3{x, y, z})) {
          std::fprintf(stderr, "sluice cuda emulator: kernel %p failed: %s\n", kernel,
                       g_exec.error.c_str());
          t_last_error = cudaErrorLaunchFailure;
          g_exec.body = nullptr;
          return;
        }
      }
    }
  }
  g_exec.body = nullptr;
}

}  // namespace

void enqueue(cudaStream_t stream, std::function<void()> op) {
  if (stream != nullptr && stream->capturing) {
    stream->captured.push_back(std::move(op));
  } else {
    op();
  }
}

const ThreadCoords& coords() { return running().coords; }

void syncthreads(std::source_location where) {
  Fiber& f = running();
  f.state = State::kBarrier;
  f.barrier_at = where;
  yield_to_scheduler();
}

void warp_collective(Collective& c) {
  Fiber& f = running();
  if (c.mask == 0) kernel_error(std::string(op_name(c.op)) + " with an empty mask");
  if (!(c.mask >> lane_of(f) & 1)) {
    kernel_error(std::string(op_name(c.op)) + " from a lane outside its own mask");
  }
  f.coll = &c;
  f.state = State::kCollective;
  ++g_exec.warp_arrived[f.linear / 32];
  yield_to_scheduler();
}

unsigned activemask() {
  Fiber& f = running();
  const int base = f.linear - lane_of(f);
  unsigned m = 0;
  for (int l = 0; l < 32 && base + l < static_cast<int>(g_exec.fibers.size()); ++l) {
    if (g_exec.fibers[base + l].state != State::kDone) m |= 1u << l;
  }
  return m;
}

void* dynamic_smem() {
  running();
  return g_exec.smem.empty() ? nullptr : g_exec.smem.data();
}

void cp_async16(void* dst, const void* src, bool valid) {
  Fiber& f = running();
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 ||
      (valid && reinterpret_cast<uintptr_t>(src) % 16 != 0)) {
    kernel_error("cp.async of 16 bytes between addresses that are not 16-byte aligned");
  }
  f.copies.push_back(CpAsync{dst, src, valid, f.commits});
}

void cp_async_commit() { ++running().commits; }

void cp_async_wait(int groups_left) {
  Fiber& f = running();
  const int done_below = f.commits - groups_left;  // groups [0, done_below) must have landed
  auto it = f.copies.begin();
  for (; it != f.copies.end() && it->group < done_below; ++it) {
    if (it->valid) {
      std::memcpy(it->dst, it->src, 16);
    } else {
      std::memset(it->dst, 0, 16);
    }
  }
  f.copies.erase(f.copies.begin(), it);
}

void launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
            std::function<void()> body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (smem_bytes > kDefaultSmemLimit) {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    const auto it = g_max_dynamic_smem.find(kernel);
    if (it == g_max_dynamic_smem.end() || smem_bytes > static_cast<size_t>(it->second)) {
      std::fprintf(stderr,
                   "sluice cuda emulator: kernel %p launched with %zu bytes of dynamic shared "
                   "memory, above its limit (48 KiB unless cudaFuncSetAttribute raised it)\n",
                   kernel, smem_bytes);
      fail(cudaErrorInvalidValue);
      return;
    }
  }
  enqueue(stream, [kernel, grid, block, smem_bytes, body = std::move(body)] {
    run_grid(kernel, grid, block, smem_bytes, body);
  });
}

}  // namespace sluice_emu

// ---- the CUDA runtime API ----
using sluice_emu::fail;

extern "C" {

cudaError_t cudaGetLastError() {
  const cudaError_t e = sluice_emu::t_last_error;
  sluice_emu::t_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return sluice_emu::t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    default:
      return "cudaError (emulated)";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure (see the emulator's message)";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    default:
      return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "sluice CUDA emulator (CPU, as sm_90)");
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = sluice_emu::capacity_bytes();
  prop->multiProcessorCount = 132;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->sharedMemPerBlock = sluice_emu::kDefaultSmemLimit;
  prop->sharedMemPerBlockOptin = sluice_emu::kSmemOptinLimit;
  prop->sharedMemPerMultiprocessor = 228 << 10;
  prop->regsPerBlock = 65536;
  prop->l2CacheSize = 50 << 20;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(sluice_emu::kSmemOptinLimit);
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = static_cast<int>(sluice_emu::kDefaultSmemLimit);
      break;
    case cudaDevAttrWarpSize:
      *value = 32;
      break;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrL2CacheSize:
      *value = 50 << 20;
      break;
    default:
      return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  if (sluice_emu::capture_forbids_sync_call()) {
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > sluice_emu::kSmemOptinLimit) {
      return fail(cudaErrorInvalidValue);
    }
    std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
    sluice_emu::g_max_dynamic_smem[func] = value;
  }
  return cudaSuccess;
}

// ---- memory ----

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (sluice_emu::capture_forbids_sync_call()) return fail(cudaErrorStreamCaptureUnsupported);
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  if (!sluice_emu::take_device_bytes(rounded)) {
    *ptr = nullptr;
    return fail(cudaErrorMemoryAllocation);
  }
  void* p = std::aligned_alloc(256, rounded);
  if (p == nullptr) {
    sluice_emu::give_back_device_bytes(rounded);
    return fail(cudaErrorMemoryAllocation);
  }
  std::memset(p, 0xFF, rounded);
  std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
  sluice_emu::g_allocations[p] = rounded;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
    const auto it = sluice_emu::g_allocations.find(ptr);
    if (it == sluice_emu::g_allocations.end()) return fail(cudaErrorInvalidValue);
    bytes = it->second;
    sluice_emu::g_allocations.erase(it);
  }
  sluice_emu::give_back_device_bytes(bytes);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  *ptr = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  return *ptr != nullptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
  *total_bytes = sluice_emu::capacity_bytes();
  *free_bytes = *total_bytes - sluice_emu::g_allocated;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (sluice_emu::capture_forbids_sync_call()) return fail(cudaErrorStreamCaptureUnsupported);
  if (bytes != 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  sluice_emu::enqueue(stream, [=] { std::memmove(dst, src, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind, cudaStream_t stream) {
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);
  sluice_emu::enqueue(stream, [=] {
    for (size_t r = 0; r < height; ++r) {
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                   width);
    }
  });
  return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (sluice_emu::capture_forbids_sync_call()) return fail(cudaErrorStreamCaptureUnsupported);
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  sluice_emu::enqueue(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemset2DAsync(void* dst, size_t pitch, int value, size_t width, size_t height,
                              cudaStream_t stream) {
  if (width > pitch) return fail(cudaErrorInvalidValue);
  sluice_emu::enqueue(stream, [=] {
    for (size_t r = 0; r < height; ++r)
      std::memset(static_cast<char*>(dst) + r * pitch, value, width);
  });
  return cudaSuccess;
}

// ---- streams and graphs ----

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  *stream = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return fail(cudaErrorInvalidValue);
  {
    std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
    std::erase(sluice_emu::g_capturing, stream);
  }
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (stream != nullptr && stream->capturing) {
    stream->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (stream == nullptr || stream->capturing) return fail(cudaErrorInvalidValue);
  stream->capturing = true;
  stream->invalidated = false;
  stream->mode = mode;
  stream->owner = std::this_thread::get_id();
  stream->captured.clear();
  std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
  sluice_emu::g_capturing.push_back(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (stream == nullptr || !stream->capturing) return fail(cudaErrorInvalidValue);
  stream->capturing = false;
  {
    std::lock_guard<std::mutex> lock(sluice_emu::g_state_mutex);
    std::erase(sluice_emu::g_capturing, stream);
  }
  if (stream->invalidated) {
    *graph = nullptr;
    stream->captured.clear();
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = new CUgraph_st{std::move(stream->captured)};
  stream->captured.clear();
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  *status = stream != nullptr && stream->capturing
                ? (stream->invalidated ? cudaStreamCaptureStatusInvalidated
                                       : cudaStreamCaptureStatusActive)
                : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

// An executable graph holds device memory on a GPU (its nodes' parameters): here 256 bytes a
// node, so that instantiating on a full device fails as it can there.
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return fail(cudaErrorInvalidValue);
  const size_t bytes = 256 * std::max<size_t>(graph->ops.size(), 1);
  if (!sluice_emu::take_device_bytes(bytes)) {
    *exec = nullptr;
    return fail(cudaErrorMemoryAllocation);
  }
  *exec = new CUgraphExec_st{graph->ops, bytes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return fail(cudaErrorInvalidValue);
  if (stream != nullptr && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported);
  for (const sluice_emu::Op& op : exec->ops) op();
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (exec != nullptr) sluice_emu::give_back_device_bytes(exec->device_bytes);
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

// ---- events ----

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  sluice_emu::enqueue(stream, [event] { event->at = std::chrono::steady_clock::now(); });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

}  // extern "C"
