// The CUDA matmul through cuBLASLt: argument checks, the per-device context (handle,
// workspace, algorithm cache) and the mapping of row-major tensors onto cuBLASLt's
// column-major problem.
//
// Layout mapping. cuBLASLt is column-major; a row-major [R, C] matrix with row stride ld is
// the column-major [C, R] matrix with leading dimension ld. So out [M, N] = a [M, K] · w^T is
// computed as the column-major product
//     out^T [N, M] = op(W) · A,   W = w seen as [K, N] (ld K), op(W) = W^T  [N, K]
//                                 A = a seen as [K, M] (ld lda), op(A) = A  [K, M]
// i.e. cuBLASLt's "TN" form with cuBLAS's A = our w and B = our a, which every algorithm
// family supports.

#include "kernels/cuda/matmul.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/check.h"
#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemv.h"

namespace sluice::kernels::cuda {

using namespace detail;  // the shared argument checks (arg_checks.h)

namespace {

[[noreturn]] void cublas_check_failed(cublasStatus_t status, const char* expr, const char* file,
                                      int line) {
  std::fprintf(stderr, "sluice: cuBLAS call failed: %s: %s: %s at %s:%d\n", expr,
               cublasLtGetStatusName(status), cublasLtGetStatusString(status), file, line);
  std::fflush(stderr);
  std::abort();
}

// Like SLUICE_CUDA_CHECK, for cuBLASLt calls: a failure is a bug or a dead device.
#define SLUICE_CUBLAS_CHECK(expr)                                            \
  do {                                                                       \
    const cublasStatus_t sluice_cublas_status_ = (expr);                     \
    if (sluice_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]] {       \
      cublas_check_failed(sluice_cublas_status_, #expr, __FILE__, __LINE__); \
    }                                                                        \
  } while (0)

// 32 MiB lets cuBLASLt use its split-K and stream-K algorithms on every shape the models
// have (the heuristics rarely ask for more than a few MiB).
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
// Device ordinals served; more devices than this in one process is not a configuration
// sluice runs.
constexpr int kMaxDevices = 64;
// The cache keeps one entry per distinct problem (mostly: per M seen for each weight shape).
// Past this many it starts over rather than grow without bound (an entry is ~120 bytes; a
// re-query costs tens of microseconds of host time, no device work).
constexpr size_t kMaxCachedAlgos = 16384;
// Candidates asked of the heuristic; the first that reports success is taken.
constexpr int kHeuristicCandidates = 4;

// A problem as the algorithm choice sees it. Alignments are the bytes (a power of two,
// at most 256) that every column start of the operand is a multiple of.
struct AlgoKey {
  int64_t m = 0, n = 0, k = 0;  // cuBLASLt's: m = N, n = M
  int64_t lda = 0, ldc = 0;     // our a's and out's row strides in elements
  uint16_t align_w = 0, align_a = 0, align_out = 0;
  cudaDataType_t in_type = CUDA_R_16BF;  // a and w
  cudaDataType_t out_type = CUDA_R_32F;
  bool operator==(const AlgoKey&) const = default;
};

struct AlgoKeyHash {
  size_t operator()(const AlgoKey& k) const {
    uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
    mix(static_cast<uint64_t>(k.m));
    mix(static_cast<uint64_t>(k.n));
    mix(static_cast<uint64_t>(k.k));
    mix(static_cast<uint64_t>(k.lda));
    mix(static_cast<uint64_t>(k.ldc));
    mix((uint64_t{k.align_w} << 32) | (uint64_t{k.align_a} << 16) | k.align_out);
    mix((static_cast<uint64_t>(k.in_type) << 32) | static_cast<uint64_t>(k.out_type));
    return static_cast<size_t>(h);
  }
};

struct AlgoChoice {
  cublasLtMatmulAlgo_t algo;  // plain data: copied out of the cache under the lock
  size_t workspace_bytes = 0;
};

// One device's cuBLASLt state. Created once, never destroyed.
// NOTE: the handle and workspace live until the process exits on purpose: tearing them down
// from a static destructor would race the CUDA runtime's own shutdown.
struct DeviceBlas {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;  // kWorkspaceBytes of device memory
  std::mutex algos_mutex;
  std::unordered_map<AlgoKey, AlgoChoice, AlgoKeyHash> algos;  // guarded by algos_mutex
};

std::mutex g_create_mutex;  // serialises creation; lookups read g_devices lock-free
std::array<std::atomic<DeviceBlas*>, kMaxDevices> g_devices{};

int current_device() {
  int dev = 0;
  SLUICE_CUDA_CHECK(cudaGetDevice(&dev));
  SLUICE_CHECK(dev >= 0 && dev < kMaxDevices, "matmul: device {} is beyond the {} supported", dev,
               kMaxDevices);
  return dev;
}

// Creates device `dev`'s context (the caller holds g_create_mutex and found none). A device
// whose memory is taken is the operator's problem, not a bug: RESOURCE_EXHAUSTED, with
// nothing left allocated.
StatusOr<DeviceBlas*> create_device_blas(int dev) {
  auto ctx = std::make_unique<DeviceBlas>();
  const cublasStatus_t created = cublasLtCreate(&ctx->handle);
  if (created != CUBLAS_STATUS_SUCCESS) {
    return Status::internal(fmt::format("cuBLASLt cannot start on device {}: {}: {}", dev,
                                        cublasLtGetStatusName(created),
                                        cublasLtGetStatusString(created)));
  }
  const cudaError_t err = cudaMalloc(&ctx->workspace, kWorkspaceBytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cublasLtDestroy(ctx->handle);
    const std::string what =
        fmt::format("the cuBLASLt workspace ({} MiB) cannot be allocated on device {}: {}",
                    kWorkspaceBytes >> 20, dev, cudaGetErrorString(err));
    return err == cudaErrorMemoryAllocation ? Status::resource_exhausted("GPU memory: " + what)
                                            : Status::internal(what);
  }
  DeviceBlas* raw = ctx.release();
  g_devices[dev].store(raw, std::memory_order_release);
  return raw;
}

// The device's context, created on first use. With `stream` given (a launcher), creating it
// while that stream is capturing would put cudaMalloc into a graph capture: abort instead,
// naming the fix.
StatusOr<DeviceBlas*> find_or_create_device_blas(int dev, const cudaStream_t* stream) {
  if (DeviceBlas* ctx = g_devices[dev].load(std::memory_order_acquire)) return ctx;
  std::lock_guard<std::mutex> lock(g_create_mutex);
  if (DeviceBlas* ctx = g_devices[dev].load(std::memory_order_acquire)) return ctx;
  if (stream != nullptr) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    const cudaError_t err = cudaStreamIsCapturing(*stream, &capture);
    SLUICE_CHECK(err == cudaSuccess && capture == cudaStreamCaptureStatusNone,
                 "matmul: the first matmul on device {} runs under stream capture, which cannot "
                 "allocate the cuBLASLt workspace; call init_blas() on each device before "
                 "capturing",
                 dev);
  }
  return create_device_blas(dev);
}

// For a launcher: one that cannot create the context aborts (init_blas() at start-up is
// where that failure is reported).
DeviceBlas& device_blas(int dev, const cudaStream_t* stream) {
  StatusOr<DeviceBlas*> ctx = find_or_create_device_blas(dev, stream);
  SLUICE_CHECK(ctx.is_ok(), "matmul: {}", ctx.status().to_string());
  return **ctx;
}

cudaDataType_t cuda_type(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

// The largest power of two (<= 256, cuBLASLt's default assumption) dividing the pointer and
// the bytes between columns: what every column start of the operand is aligned to.
uint16_t alignment_bytes(const void* data, int64_t ld, DType t) {
  const uint64_t bits =
      reinterpret_cast<uintptr_t>(data) | static_cast<uint64_t>(ld) * dtype_size(t) | uint64_t{256};
  return static_cast<uint16_t>(bits & (~bits + 1));
}

// The algorithm for `key`, from the cache or (first time) from the cuBLASLt heuristic with
// the alignments of the key as preferences.
AlgoChoice choose_algo(DeviceBlas& ctx, const AlgoKey& key, cublasLtMatmulDesc_t desc,
                       cublasLtMatrixLayout_t w_layout, cublasLtMatrixLayout_t a_layout,
                       cublasLtMatrixLayout_t out_layout) {
  {
    std::lock_guard<std::mutex> lock(ctx.algos_mutex);
    const auto it = ctx.algos.find(key);
    if (it != ctx.algos.end()) return it->second;
  }
  // Query outside the lock: a miss costs tens of microseconds, and two threads that race on
  // one new key both get the same (deterministic) answer.
  cublasLtMatmulPreferenceOpaque_t pref_storage;
  const cublasLtMatmulPreference_t pref = &pref_storage;
  SLUICE_CUBLAS_CHECK(cublasLtMatmulPreferenceInit(pref));
  const uint64_t max_workspace = kWorkspaceBytes;
  SLUICE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof(max_workspace)));
  const uint32_t align_w = key.align_w, align_a = key.align_a, align_out = key.align_out;
  SLUICE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_w, sizeof(align_w)));
  SLUICE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_a, sizeof(align_a)));
  SLUICE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_out, sizeof(align_out)));
  SLUICE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_out, sizeof(align_out)));

  std::array<cublasLtMatmulHeuristicResult_t, kHeuristicCandidates> results{};
  int num_results = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc, w_layout, a_layout, out_layout, out_layout,
                                     pref, kHeuristicCandidates, results.data(), &num_results);
  const auto problem = [&] {
    return fmt::format(
        "out [{}, {}] {} (row stride {}) = a [{}, {}] {} (row stride {}) . "
        "w [{}, {}]^T {}, alignments w {} a {} out {} bytes",
        key.n, key.m, key.out_type == CUDA_R_16BF ? "bf16" : "f32", key.ldc, key.n, key.k,
        key.in_type == CUDA_R_16BF ? "bf16" : "f32", key.lda, key.m, key.k,
        key.in_type == CUDA_R_16BF ? "bf16" : "f32", key.align_w, key.align_a, key.align_out);
  };
  SLUICE_CHECK(status == CUBLAS_STATUS_SUCCESS || status == CUBLAS_STATUS_NOT_SUPPORTED,
               "matmul: cublasLtMatmulAlgoGetHeuristic failed with {} ({}) for {}",
               cublasLtGetStatusName(status), cublasLtGetStatusString(status), problem());
  const cublasLtMatmulHeuristicResult_t* best = nullptr;
  if (status == CUBLAS_STATUS_SUCCESS) {
    for (int i = 0; i < num_results && best == nullptr; ++i) {
      if (results[i].state == CUBLAS_STATUS_SUCCESS) best = &results[i];
    }
  }
  SLUICE_CHECK(best != nullptr, "matmul: cuBLASLt has no algorithm for {}", problem());
  const AlgoChoice choice{best->algo, best->workspaceSize};

  std::lock_guard<std::mutex> lock(ctx.algos_mutex);
  if (ctx.algos.size() >= kMaxCachedAlgos) ctx.algos.clear();
  ctx.algos.emplace(key, choice);
  return choice;
}

// ---- argument checks ----

constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

// Defined, on the device, bf16 (or f32 when allow_f32), rank 2 with extents that fit
// cuBLASLt's int32 dimensions, non-negative strides, contiguous last dimension.
Status check_matrix(std::string_view op, std::string_view name, const Tensor& t, bool allow_f32,
                    std::string_view expected_shape) {
  SLUICE_RETURN_IF_ERROR(check_on_device(op, name, t));
  SLUICE_RETURN_IF_ERROR(allow_f32 ? check_float_dtype(op, name, t)
                                   : check_dtype(op, name, t, DType::kBF16));
  return check_layout(op, name, t, 2, 2, expected_shape, kMaxDim);
}

Status check_problem(std::string_view op, const Tensor& out, const Tensor& a, const Tensor& w) {
  SLUICE_RETURN_IF_ERROR(check_matrix(op, "out", out, true, "[M, N]"));
  // bf16 operands; or f32 a and w into an f32 out (an SGEMM, for small f32 layers).
  const bool f32 = a.dtype == DType::kF32;
  SLUICE_RETURN_IF_ERROR(check_matrix(op, "a", a, f32, "[M, K]"));
  SLUICE_RETURN_IF_ERROR(check_matrix(op, "w", w, f32, "[N, K]"));
  if (w.dtype != a.dtype || (f32 && out.dtype != DType::kF32)) {
    return fail(op, fmt::format("a has dtype {}, w {} and out {}; expected bf16 a and w, or f32 "
                                "a, w and out",
                                dtype_name(a.dtype), dtype_name(w.dtype), dtype_name(out.dtype)));
  }
  const int64_t M = a.shape[0], K = a.shape[1], N = w.shape[0];
  if (w.shape[1] != K) {
    return fail(op, fmt::format("w has shape {} but a has {}; expected w [N, {}] (K of a)",
                                w.shape_string(), a.shape_string(), K));
  }
  if (out.shape[0] != M || out.shape[1] != N) {
    return fail(op, fmt::format("out has shape {}; expected [{}, {}] (M of a {}, N of w {})",
                                out.shape_string(), M, N, a.shape_string(), w.shape_string()));
  }
  if (N > 1 && w.strides[0] != K) {
    return fail(op, fmt::format("w has row stride {}; expected {} (a contiguous [N, K] weight)",
                                w.strides[0], K));
  }
  if (M > 1 && a.strides[0] < K) {
    return fail(op, fmt::format("a has row stride {} < K = {}; expected rows that do not "
                                "overlap",
                                a.strides[0], K));
  }
  if (M > 1 && out.strides[0] < N) {
    return fail(op, fmt::format("out has row stride {} < N = {}; expected rows that do not "
                                "overlap",
                                out.strides[0], N));
  }
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", out, "a", a));
  return check_disjoint(op, "out", out, "w", w);
}

Status check_acc(std::string_view op, const MatmulAccArgs& args) {
  SLUICE_RETURN_IF_ERROR(check_problem(op, args.out, args.a, args.w));
  if (args.beta != 0.0f && args.beta != 1.0f) {
    return fail(op, fmt::format("beta is {}; expected 0 or 1", args.beta));
  }
  return Status::ok();
}

// ---- launch ----

// A row stride as cuBLASLt's leading dimension: with one row the stride is free (any value,
// 0 included), so use the row length, which cuBLASLt requires as a minimum.
int64_t leading_dim(const Tensor& t) { return t.shape[0] > 1 ? t.strides[0] : t.shape[1]; }

// Decode shapes (matmul_uses_gemv): 1 to kGemvMaxRows bf16 rows, K a multiple of 8 and at
// least kGemvMinK, a weight of at most kGemvMaxWeight elements (larger ones stream at full
// speed through cuBLASLt), 16-byte aligned rows of a and w.
constexpr int64_t kGemvMinK = 256;
constexpr int64_t kGemvMaxWeight = int64_t{1} << 26;

bool gemv_applies(const Tensor& a, const Tensor& w) {
  const int64_t M = a.shape[0], K = a.shape[1], N = w.shape[0];
  return a.dtype == DType::kBF16 && w.dtype == DType::kBF16 && M >= 1 && M <= kGemvMaxRows &&
         K >= kGemvMinK && K % 8 == 0 && N * K <= kGemvMaxWeight && aligned16(w.data) &&
         aligned16(a.data) && (M == 1 || (a.strides[0] * 2) % 16 == 0);
}

GemvParams gemv_params(const Tensor& out, const Tensor& a, const Tensor& w) {
  const int64_t M = a.shape[0], K = a.shape[1];
  GemvParams p;
  p.a = a.data;
  p.w = w.data;
  p.out = out.data;
  p.lda = M > 1 ? a.strides[0] : K;
  p.ldc = M > 1 ? out.strides[0] : out.shape[1];
  p.N = w.shape[0];
  p.M = static_cast<int32_t>(M);
  p.K = static_cast<int32_t>(K);
  p.out_type = elem_type(out.dtype);
  return p;
}

void run_matmul(const Tensor& out, const Tensor& a, const Tensor& w, float beta, void* stream) {
  const int64_t M = a.shape[0], K = a.shape[1], N = w.shape[0];
  if (M == 0 || N == 0) return;
  if (gemv_applies(a, w)) {
    GemvParams p = gemv_params(out, a, w);
    p.accumulate = beta != 0.0f;
    launch_gemv(p, stream);
    return;
  }
  const auto s = static_cast<cudaStream_t>(stream);
  const int64_t lda = leading_dim(a);
  const int64_t ldc = leading_dim(out);
  if (K == 0) {  // an empty sum: out = beta * out
    if (beta == 0.0f) {
      const size_t elem = dtype_size(out.dtype);
      SLUICE_CUDA_CHECK(cudaMemset2DAsync(out.data, static_cast<size_t>(ldc) * elem, 0,
                                          static_cast<size_t>(N) * elem, static_cast<size_t>(M),
                                          s));
    }
    return;
  }
  DeviceBlas& ctx = device_blas(current_device(), &s);

  // Descriptors live in stack storage (the *Init calls), so a launch allocates nothing.
  cublasLtMatmulDescOpaque_t desc_storage;
  const cublasLtMatmulDesc_t desc = &desc_storage;
  SLUICE_CUBLAS_CHECK(cublasLtMatmulDescInit(desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t trans_w = CUBLAS_OP_T, trans_a = CUBLAS_OP_N;
  SLUICE_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_w, sizeof(trans_w)));
  SLUICE_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_a, sizeof(trans_a)));
  cublasLtMatrixLayoutOpaque_t w_storage, a_storage, out_storage;
  const cublasLtMatrixLayout_t w_layout = &w_storage;
  const cublasLtMatrixLayout_t a_layout = &a_storage;
  const cublasLtMatrixLayout_t out_layout = &out_storage;
  const cudaDataType_t out_type = cuda_type(out.dtype);
  const cudaDataType_t in_type = cuda_type(a.dtype);  // w's too (checked)
  SLUICE_CUBLAS_CHECK(cublasLtMatrixLayoutInit(w_layout, in_type, static_cast<uint64_t>(K),
                                               static_cast<uint64_t>(N), K));
  SLUICE_CUBLAS_CHECK(cublasLtMatrixLayoutInit(a_layout, in_type, static_cast<uint64_t>(K),
                                               static_cast<uint64_t>(M), lda));
  SLUICE_CUBLAS_CHECK(cublasLtMatrixLayoutInit(out_layout, out_type, static_cast<uint64_t>(N),
                                               static_cast<uint64_t>(M), ldc));

  AlgoKey key;
  key.m = N;
  key.n = M;
  key.k = K;
  key.lda = lda;
  key.ldc = ldc;
  key.align_w = alignment_bytes(w.data, K, w.dtype);
  key.align_a = alignment_bytes(a.data, lda, a.dtype);
  key.align_out = alignment_bytes(out.data, ldc, out.dtype);
  key.in_type = in_type;
  key.out_type = out_type;
  const AlgoChoice choice = choose_algo(ctx, key, desc, w_layout, a_layout, out_layout);

  const float alpha = 1.0f;
  // C and D are the same matrix with the same layout: cuBLASLt's in-place form, which beta 1
  // needs and beta 0 permits (C is then not read).
  SLUICE_CUBLAS_CHECK(cublasLtMatmul(ctx.handle, desc, &alpha, w.data, w_layout, a.data, a_layout,
                                     &beta, out.data, out_layout, out.data, out_layout,
                                     &choice.algo, ctx.workspace, choice.workspace_bytes, s));
  SLUICE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

Status init_blas() { return find_or_create_device_blas(current_device(), nullptr).status(); }

size_t blas_cached_algo_count() {
  DeviceBlas* ctx = g_devices[current_device()].load(std::memory_order_acquire);
  if (ctx == nullptr) return 0;
  std::lock_guard<std::mutex> lock(ctx->algos_mutex);
  return ctx->algos.size();
}

Status check_matmul_geglu(const MatmulGegluArgs& args) {
  constexpr std::string_view op = "matmul_geglu";
  const Tensor &out = args.out, &a = args.a, &w = args.w;
  SLUICE_RETURN_IF_ERROR(check_matrix(op, "out", out, true, "[M, I]"));
  SLUICE_RETURN_IF_ERROR(check_matrix(op, "a", a, false, "[M, K]"));
  SLUICE_RETURN_IF_ERROR(check_matrix(op, "w", w, false, "[2 I, K]"));
  const int64_t M = a.shape[0], K = a.shape[1], I = w.shape[0] / 2;
  if (w.shape[0] % 2 != 0 || w.shape[1] != K || (w.shape[0] > 1 && w.strides[0] != K)) {
    return fail(op, fmt::format("w has shape {} (row stride {}); expected a contiguous [2 I, {}] "
                                "weight: the gate rows, then the up rows",
                                w.shape_string(), w.strides[0], K));
  }
  if (out.shape[0] != M || out.shape[1] != I) {
    return fail(op, fmt::format("out has shape {}; expected [{}, {}] (M of a {}, half the rows "
                                "of w {})",
                                out.shape_string(), M, I, a.shape_string(), w.shape_string()));
  }
  if (M > 1 && (a.strides[0] < K || out.strides[0] < I)) {
    return fail(op, fmt::format("a has row stride {} and out {}; expected at least {} and {}",
                                a.strides[0], out.strides[0], K, I));
  }
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", out, "a", a));
  SLUICE_RETURN_IF_ERROR(check_disjoint(op, "out", out, "w", w));
  if (!gemv_applies(a, w)) {
    return fail(op, fmt::format("a has shape {} and w {}: not a decode shape; expected 1 to {} "
                                "rows, K a multiple of 8 and at least {}, w of at most {} "
                                "elements, 16-byte aligned rows of a and w (else: matmul, then "
                                "geglu)",
                                a.shape_string(), w.shape_string(), kGemvMaxRows, kGemvMinK,
                                kGemvMaxWeight));
  }
  return Status::ok();
}

bool matmul_geglu_applies(const MatmulGegluArgs& args) {
  // The cheap test first: a prefill step asks at every layer.
  return args.a.ndim == 2 && args.w.ndim == 2 && gemv_applies(args.a, args.w) &&
         check_matmul_geglu(args).is_ok();
}

void matmul_geglu(const MatmulGegluArgs& args, void* stream) {
  check_or_die(check_matmul_geglu(args));
  if (args.a.shape[0] == 0) return;
  GemvParams p = gemv_params(args.out, args.a, args.w);
  p.geglu_rows = args.w.shape[0] / 2;
  launch_gemv(p, stream);
}

bool matmul_uses_gemv(const MatmulArgs& args) {
  return check_matmul(args).is_ok() && gemv_applies(args.a, args.w);
}

Status check_matmul(const MatmulArgs& args) {
  return check_problem("matmul", args.out, args.a, args.w);
}

void matmul(const MatmulArgs& args, void* stream) {
  check_or_die(check_matmul(args));
  run_matmul(args.out, args.a, args.w, 0.0f, stream);
}

Status check_matmul_acc(const MatmulAccArgs& args) { return check_acc("matmul_acc", args); }

void matmul_acc(const MatmulAccArgs& args, void* stream) {
  check_or_die(check_matmul_acc(args));
  run_matmul(args.out, args.a, args.w, args.beta, stream);
}

}  // namespace sluice::kernels::cuda
