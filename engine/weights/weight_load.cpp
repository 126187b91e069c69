// load_as / convert_to_f32: a WeightInfo to a kernels::Tensor in a compute dtype, zero-copy
// where the stored bytes can be used as they are.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "common/checked_math.h"
#include "common/half.h"
#include "engine/weights/dequant.h"
#include "engine/weights/weight_source.h"

namespace sluice::weights {

namespace {

constexpr size_t kBufferAlignment = 64;
constexpr uint64_t kChunkElements = 4096;  // a multiple of every block size (32, 256)

struct AlignedDelete {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{kBufferAlignment}); }
};

std::optional<kernels::DType> source_as_compute(SourceDType t) {
  switch (t) {
    case SourceDType::kF32:
      return kernels::DType::kF32;
    case SourceDType::kF16:
      return kernels::DType::kF16;
    case SourceDType::kBF16:
      return kernels::DType::kBF16;
    default:
      return std::nullopt;
  }
}

// A WeightInfo from a WeightSource is always consistent; one built by hand may not be.
Status check_consistent(const WeightInfo& info) {
  uint64_t block_elems = 1;
  uint64_t block_bytes = 0;
  ggml_type_layout(static_cast<uint32_t>(to_ggml_type(info.dtype)), &block_elems, &block_bytes);
  auto expected_bytes = checked_mul(info.num_elements / block_elems, block_bytes);
  if (info.num_elements % block_elems != 0 || !expected_bytes || *expected_bytes != info.nbytes ||
      (info.data == nullptr && info.nbytes != 0)) {
    return Status::invalid_argument(fmt::format(
        "tensor '{}': {} bytes at {} do not hold {} elements of {}", info.name, info.nbytes,
        static_cast<const void*>(info.data), info.num_elements, source_dtype_name(info.dtype)));
  }
  return Status::ok();
}

}  // namespace

Status convert_to_f32(const WeightInfo& info, uint64_t first, uint64_t num_elements, float* dst) {
  const GgmlType type = to_ggml_type(info.dtype);
  uint64_t block_elems = 1;
  uint64_t block_bytes = 0;
  ggml_type_layout(static_cast<uint32_t>(type), &block_elems, &block_bytes);
  SLUICE_RETURN_IF_ERROR(check_consistent(info));
  if (!range_within(first, num_elements, info.num_elements)) {
    return Status::out_of_range(
        fmt::format("tensor '{}': elements [{}, {}+{}) out of range ({}, limit {})", info.name,
                    first, first, num_elements, first, info.num_elements));
  }
  if (first % block_elems != 0 || num_elements % block_elems != 0) {
    return Status::invalid_argument(fmt::format(
        "tensor '{}': element range [{}, +{}) not on {} block boundaries ({}, limit multiple of "
        "{})",
        info.name, first, num_elements, source_dtype_name(info.dtype), first, block_elems));
  }
  // first / block_elems * block_bytes <= nbytes, since the range lies inside the tensor.
  return dequantize(type, info.data + first / block_elems * block_bytes, num_elements, dst);
}

StatusOr<OwnedTensor> load_as(const WeightInfo& info, kernels::DType want) {
  if (want != kernels::DType::kF32 && want != kernels::DType::kF16 &&
      want != kernels::DType::kBF16) {
    return Status::invalid_argument(
        fmt::format("tensor '{}': cannot load as {}", info.name, kernels::dtype_name(want)));
  }
  if (info.shape.size() > static_cast<size_t>(kernels::kMaxDims)) {
    return Status::invalid_argument(fmt::format("tensor '{}' has rank {} ({}, limit {})", info.name,
                                                info.shape.size(), info.shape_string(),
                                                kernels::kMaxDims));
  }
  SLUICE_RETURN_IF_ERROR(check_consistent(info));
  OwnedTensor out;
  kernels::Tensor& t = out.tensor;
  t.dtype = want;
  t.device = kernels::Device::kCpu;
  t.ndim = info.shape.empty() ? 1 : static_cast<int>(info.shape.size());
  for (int d = 0; d < t.ndim; ++d) t.shape[d] = info.shape.empty() ? 1 : info.shape[d];
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.strides[d] = stride;
    stride *= t.shape[d];
  }

  const size_t elem_size = kernels::dtype_size(want);
  auto stored = source_as_compute(info.dtype);
  if (stored && *stored == want && info.data != nullptr &&
      reinterpret_cast<uintptr_t>(info.data) % elem_size == 0) {
    // NOTE: the mapping is read-only; the view's non-const pointer must not be written.
    t.data = const_cast<uint8_t*>(info.data);
    out.storage = info.keep_alive;
    out.borrowed = true;
    return out;
  }

  auto bytes = checked_mul(info.num_elements, elem_size);
  auto padded =
      bytes ? checked_align_up(std::max<uint64_t>(*bytes, 1), kBufferAlignment) : std::nullopt;
  if (!padded) {
    return Status::resource_exhausted(fmt::format("tensor '{}': {} elements of {} overflow",
                                                  info.name, info.num_elements,
                                                  kernels::dtype_name(want)));
  }
  void* raw = ::operator new (*padded, std::align_val_t{kBufferAlignment}, std::nothrow);
  if (raw == nullptr) {
    return Status::resource_exhausted(
        fmt::format("tensor '{}': cannot allocate {} bytes for {} as {}", info.name, *padded,
                    info.shape_string(), kernels::dtype_name(want)));
  }
  std::shared_ptr<void> buffer(raw, AlignedDelete());
  t.data = raw;

  if (want == kernels::DType::kF32) {
    SLUICE_RETURN_IF_ERROR(convert_to_f32(info, 0, info.num_elements, static_cast<float*>(raw)));
  } else {
    // Through f32 in chunks, then round to nearest even.
    std::vector<float> scratch(std::min<uint64_t>(kChunkElements, info.num_elements));
    uint16_t* dst = static_cast<uint16_t*>(raw);
    for (uint64_t first = 0; first < info.num_elements; first += kChunkElements) {
      uint64_t n = std::min<uint64_t>(kChunkElements, info.num_elements - first);
      SLUICE_RETURN_IF_ERROR(convert_to_f32(info, first, n, scratch.data()));
      if (want == kernels::DType::kBF16) {
        for (uint64_t i = 0; i < n; ++i) dst[first + i] = f32_to_bf16(scratch[i]);
      } else {
        for (uint64_t i = 0; i < n; ++i) dst[first + i] = f32_to_f16(scratch[i]);
      }
    }
  }
  out.storage = std::move(buffer);
  out.borrowed = false;
  return out;
}

StatusOr<OwnedTensor> load_as_f32(const WeightInfo& info) {
  return load_as(info, kernels::DType::kF32);
}

}  // namespace sluice::weights
