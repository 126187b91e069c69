// The part of cuBLASLt the project calls, for the CUDA emulator (cuda_emu.h): descriptors
// keep what they were given, the heuristic accepts the plain GEMMs matmul.cpp asks for (f32
// compute and scale, bf16 or f32 operands, column-major layouts, no epilogue) and refuses
// the rest, and cublasLtMatmul computes D = alpha op(A) op(B) + beta C on the host with f32
// accumulation, in stream order like a kernel.

#include <cublasLt.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_emu.h"

struct cublasLtContext {};

namespace {

// Field slots inside the opaque descriptors' storage.
enum DescSlot { kComputeType, kScaleType, kTransA, kTransB, kEpilogue };
enum LayoutSlot { kType, kRows, kCols, kLd, kOrder, kBatch };

float load(const void* base, cudaDataType t, int64_t i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(base)[i];
  const uint32_t bits = uint32_t{static_cast<const uint16_t*>(base)[i]} << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

void store(void* base, cudaDataType t, int64_t i, float v) {
  if (t == CUDA_R_32F) {
    static_cast<float*>(base)[i] = v;
    return;
  }
  static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
}

bool plain_layout(const cublasLtMatrixLayoutOpaque_t* l) {
  const auto type = static_cast<cudaDataType>(l->data[kType]);
  return (type == CUDA_R_32F || type == CUDA_R_16BF) && l->data[kOrder] == CUBLASLT_ORDER_COL &&
         l->data[kBatch] == 1 &&
         static_cast<int64_t>(l->data[kLd]) >= static_cast<int64_t>(l->data[kRows]);
}

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasLtGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "CUBLAS_STATUS (emulated)";
  }
}

const char* cublasLtGetStatusString(cublasStatus_t status) { return cublasLtGetStatusName(status); }

cublasStatus_t cublasLtMatmulDescInit_internal(cublasLtMatmulDesc_t desc, size_t size,
                                               cublasComputeType_t compute, cudaDataType_t scale) {
  if (size < sizeof(cublasLtMatmulDescOpaque_t)) return CUBLAS_STATUS_ALLOC_FAILED;
  std::memset(desc, 0, sizeof(*desc));
  desc->data[kComputeType] = compute;
  desc->data[kScaleType] = scale;
  desc->data[kTransA] = CUBLAS_OP_N;
  desc->data[kTransB] = CUBLAS_OP_N;
  desc->data[kEpilogue] = CUBLASLT_EPILOGUE_DEFAULT;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t bytes) {
  int32_t v = 0;
  if (bytes != sizeof(int32_t) || buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&v, buf, 4);
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      desc->data[kTransA] = static_cast<uint64_t>(v);
      break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
      desc->data[kTransB] = static_cast<uint64_t>(v);
      break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      desc->data[kEpilogue] = static_cast<uint64_t>(v);
      break;
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutInit_internal(cublasLtMatrixLayout_t layout, size_t size,
                                                 cudaDataType type, uint64_t rows, uint64_t cols,
                                                 int64_t ld) {
  if (size < sizeof(cublasLtMatrixLayoutOpaque_t)) return CUBLAS_STATUS_ALLOC_FAILED;
  std::memset(layout, 0, sizeof(*layout));
  layout->data[kType] = type;
  layout->data[kRows] = rows;
  layout->data[kCols] = cols;
  layout->data[kLd] = static_cast<uint64_t>(ld);
  layout->data[kOrder] = CUBLASLT_ORDER_COL;
  layout->data[kBatch] = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceInit_internal(cublasLtMatmulPreference_t pref, size_t size) {
  if (size < sizeof(cublasLtMatmulPreferenceOpaque_t)) return CUBLAS_STATUS_ALLOC_FAILED;
  std::memset(pref, 0, sizeof(*pref));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t,
                                                    cublasLtMatmulPreferenceAttributes_t,
                                                    const void* buf, size_t) {
  return buf != nullptr ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int* returned) {
  *returned = 0;
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  const bool supported = desc->data[kComputeType] == CUBLAS_COMPUTE_32F &&
                         desc->data[kScaleType] == CUDA_R_32F &&
                         desc->data[kEpilogue] == CUBLASLT_EPILOGUE_DEFAULT && plain_layout(a) &&
                         plain_layout(b) && plain_layout(c) && plain_layout(d) &&
                         a->data[kType] == b->data[kType] && std::memcmp(c, d, sizeof(*c)) == 0;
  if (!supported) return CUBLAS_STATUS_NOT_SUPPORTED;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].workspaceSize = 0;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t a_layout, const void* B,
                              cublasLtMatrixLayout_t b_layout, const void* beta, const void* C,
                              cublasLtMatrixLayout_t c_layout, void* D,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t*, void*,
                              size_t, cudaStream_t stream) {
  const bool trans_a = desc->data[kTransA] == CUBLAS_OP_T;
  const bool trans_b = desc->data[kTransB] == CUBLAS_OP_T;
  const int64_t m = static_cast<int64_t>(d_layout->data[kRows]);
  const int64_t n = static_cast<int64_t>(d_layout->data[kCols]);
  const int64_t k = static_cast<int64_t>(trans_a ? a_layout->data[kRows] : a_layout->data[kCols]);
  const int64_t a_rows = static_cast<int64_t>(a_layout->data[kRows]);
  const int64_t a_cols = static_cast<int64_t>(a_layout->data[kCols]);
  const int64_t b_rows = static_cast<int64_t>(b_layout->data[kRows]);
  const int64_t b_cols = static_cast<int64_t>(b_layout->data[kCols]);
  if ((trans_a ? a_cols : a_rows) != m || (trans_b ? b_cols : b_rows) != k ||
      (trans_b ? b_rows : b_cols) != n || static_cast<int64_t>(c_layout->data[kRows]) != m ||
      static_cast<int64_t>(c_layout->data[kCols]) != n) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float alpha_v = *static_cast<const float*>(alpha);
  const float beta_v = *static_cast<const float*>(beta);
  const auto a_type = static_cast<cudaDataType>(a_layout->data[kType]);
  const auto b_type = static_cast<cudaDataType>(b_layout->data[kType]);
  const auto c_type = static_cast<cudaDataType>(c_layout->data[kType]);
  const auto d_type = static_cast<cudaDataType>(d_layout->data[kType]);
  const int64_t lda = static_cast<int64_t>(a_layout->data[kLd]);
  const int64_t ldb = static_cast<int64_t>(b_layout->data[kLd]);
  const int64_t ldc = static_cast<int64_t>(c_layout->data[kLd]);
  const int64_t ldd = static_cast<int64_t>(d_layout->data[kLd]);
  sluice_emu::enqueue(stream, [=] {
    std::vector<float> a_row(static_cast<size_t>(k)), b_col(static_cast<size_t>(k));
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t p = 0; p < k; ++p) {
        b_col[p] = load(B, b_type, trans_b ? j + p * ldb : p + j * ldb);
      }
      for (int64_t i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (int64_t p = 0; p < k; ++p) {
          acc += load(A, a_type, trans_a ? p + i * lda : i + p * lda) * b_col[p];
        }
        float v = alpha_v * acc;
        if (beta_v != 0.0f) v += beta_v * load(C, c_type, i + j * ldc);
        store(D, d_type, i + j * ldd, v);
      }
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
