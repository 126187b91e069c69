#pragma once
// Helpers for the CUDA tests (tests/gpu): skipping cleanly without a device, device buffers
// that start poisoned, host images of strided f32/bf16 tensors, the error metrics, streams
// and captured graphs, and the pieces of the argument-check tests (fake views, the verdict).
// Header-only, because the test binary is built from *_test.cpp files alone.

#include <cuda_runtime_api.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <random>
#include <vector>

#if defined(SLUICE_CUDA_EMU)
#include "cuda_emu/cuda_emu_testing.h"
#endif
#include "common/half.h"
#include "common/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/tensor.h"

// Skips the current test, with the reason, when no CUDA device is usable (CI, build hosts).
#define SLUICE_SKIP_WITHOUT_GPU()                                                      \
  do {                                                                                 \
    if (::sluice::kernels::cuda::cuda_device_count() == 0) {                           \
      GTEST_SKIP() << "no CUDA device (no driver, or cudaGetDeviceCount found none); " \
                      "GPU test skipped";                                              \
    }                                                                                  \
  } while (0)

namespace sluice::kernels::cuda::testing {

// The value `v` becomes when stored as `t` (round to nearest even for bf16).
inline float round_to(float v, DType t) {
  return t == DType::kBF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
}

// Device memory owned by a test; every byte starts as 0xFF, which is NaN both as f32 and
// as bf16, so an element a kernel never wrote reads back as NaN.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    SLUICE_CUDA_CHECK(cudaMalloc(&data_, bytes_ == 0 ? 1 : bytes_));
    SLUICE_CUDA_CHECK(cudaMemset(data_, 0xFF, bytes_ == 0 ? 1 : bytes_));
  }
  ~DeviceBuffer() { SLUICE_CUDA_CHECK(cudaFree(data_)); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  void upload(const void* host) {
    SLUICE_CUDA_CHECK(cudaMemcpy(data_, host, bytes_, cudaMemcpyHostToDevice));
  }
  // Synchronous: waits for the kernels queued on the legacy default stream.
  void download(void* host) const {
    SLUICE_CUDA_CHECK(cudaDeviceSynchronize());
    SLUICE_CUDA_CHECK(cudaMemcpy(host, data_, bytes_, cudaMemcpyDeviceToHost));
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Device memory in use, as the runtime counts it.
inline size_t device_bytes_used() {
  size_t free_bytes = 0, total_bytes = 0;
  SLUICE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

// Holds all but `leave` bytes of the device's free memory while it lives: a device that
// something else has filled. Under the emulator only the count moves (no host memory).
class Ballast {
 public:
  explicit Ballast(size_t leave) {
    size_t free_bytes = 0, total_bytes = 0;
    SLUICE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    bytes_ = free_bytes > leave ? free_bytes - leave : 0;
#if defined(SLUICE_CUDA_EMU)
    sluice_emu::hold_device_memory(static_cast<int64_t>(bytes_));
#else
    if (bytes_ > 0) SLUICE_CUDA_CHECK(cudaMalloc(&data_, bytes_));
#endif
  }
  ~Ballast() {
#if defined(SLUICE_CUDA_EMU)
    sluice_emu::hold_device_memory(-static_cast<int64_t>(bytes_));
#else
    if (data_ != nullptr) SLUICE_CUDA_CHECK(cudaFree(data_));
#endif
  }
  Ballast(const Ballast&) = delete;
  Ballast& operator=(const Ballast&) = delete;

 private:
  size_t bytes_ = 0;
  [[maybe_unused]] void* data_ = nullptr;
};

// A strided f32/bf16 tensor of `rows` x `dim` (shape [R, D] or [A, B, D]) living in a device
// buffer of `span` elements that starts `offset` elements before the view. `host` mirrors
// the whole buffer as floats; elements outside the view (padding) are NaN.
class TestTensor {
 public:
  // Strides default to contiguous; `offset` shifts the view inside its buffer (an odd
  // offset breaks 16-byte alignment and forces the kernels' scalar path).
  TestTensor(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {},
             int64_t offset = 0)
      : dtype_(dtype), shape_(std::move(shape)), strides_(std::move(strides)), offset_(offset) {
    if (strides_.empty()) {
      strides_.assign(shape_.size(), 1);
      for (int d = static_cast<int>(shape_.size()) - 2; d >= 0; --d) {
        strides_[d] = strides_[d + 1] * shape_[d + 1];
      }
    }
    int64_t last = 0;
    for (size_t d = 0; d < shape_.size(); ++d) last += (shape_[d] - 1) * strides_[d];
    span_ = offset_ + last + 1;
    host_.assign(span_, std::nanf(""));
    buffer_ = std::make_unique<DeviceBuffer>(span_ * dtype_size(dtype_));
  }

  int64_t dim() const { return shape_.back(); }
  int64_t rows() const {
    int64_t r = 1;
    for (size_t d = 0; d + 1 < shape_.size(); ++d) r *= shape_[d];
    return r;
  }
  // Index into host() of element (row, col); rows run over the leading dimensions.
  int64_t index(int64_t row, int64_t col) const {
    int64_t idx = offset_ + col * strides_.back();
    for (int d = static_cast<int>(shape_.size()) - 2; d >= 0; --d) {
      idx += (row % shape_[d]) * strides_[d];
      row /= shape_[d];
    }
    return idx;
  }
  float& at(int64_t row, int64_t col) { return host_[index(row, col)]; }
  float at(int64_t row, int64_t col) const { return host_[index(row, col)]; }
  std::vector<float>& host() { return host_; }
  DType dtype() const { return dtype_; }

  // Fills the view with uniform values in [lo, hi), rounded to the dtype (so host and
  // device hold the same numbers), and uploads the whole buffer (padding NaN).
  void fill_random(std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    for (int64_t r = 0; r < rows(); ++r) {
      for (int64_t c = 0; c < dim(); ++c) at(r, c) = round_to(dist(rng), dtype_);
    }
    upload();
  }
  void upload() {
    std::vector<uint8_t> bytes(span_ * dtype_size(dtype_));
    for (int64_t i = 0; i < span_; ++i) {
      if (dtype_ == DType::kBF16) {
        const uint16_t h = f32_to_bf16(host_[i]);
        std::memcpy(&bytes[2 * i], &h, 2);
      } else {
        std::memcpy(&bytes[4 * i], &host_[i], 4);
      }
    }
    buffer_->upload(bytes.data());
  }
  // Replaces host() with the device buffer's contents (waits for queued kernels).
  void download() {
    std::vector<uint8_t> bytes(span_ * dtype_size(dtype_));
    buffer_->download(bytes.data());
    for (int64_t i = 0; i < span_; ++i) {
      if (dtype_ == DType::kBF16) {
        uint16_t h;
        std::memcpy(&h, &bytes[2 * i], 2);
        host_[i] = bf16_to_f32(h);
      } else {
        std::memcpy(&host_[i], &bytes[4 * i], 4);
      }
    }
  }
  // Number of buffer elements outside the view that are no longer NaN (written by mistake).
  int64_t padding_written() const {
    std::vector<bool> in_view(span_, false);
    for (int64_t r = 0; r < rows(); ++r) {
      for (int64_t c = 0; c < dim(); ++c) in_view[index(r, c)] = true;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < span_; ++i) n += !in_view[i] && !std::isnan(host_[i]);
    return n;
  }

  // The device view, as the kernels take it.
  Tensor view() const {
    Tensor t;
    t.data = static_cast<uint8_t*>(buffer_->data()) + offset_ * dtype_size(dtype_);
    t.dtype = dtype_;
    t.device = Device::kCuda;
    t.ndim = static_cast<int>(shape_.size());
    for (int d = 0; d < t.ndim; ++d) {
      t.shape[d] = shape_[d];
      t.strides[d] = strides_[d];
    }
    return t;
  }

 private:
  DType dtype_;
  std::vector<int64_t> shape_, strides_;
  int64_t offset_ = 0;
  int64_t span_ = 0;
  std::vector<float> host_;
  std::unique_ptr<DeviceBuffer> buffer_;
};

// Compares the view of `out` (after download) with `ref` ([rows][dim], row-major): no
// element may be NaN or unwritten, each element must satisfy
// |out - ref| <= rtol * |ref| + atol * max|ref|, and ||out - ref|| / ||ref|| <= max_rel.
inline void expect_close(const TestTensor& out, const std::vector<double>& ref, double max_rel,
                         double rtol, double atol) {
  const int64_t rows = out.rows();
  const int64_t dim = out.dim();
  ASSERT_EQ(static_cast<int64_t>(ref.size()), rows * dim);
  double max_ref = 0.0;
  for (double v : ref) max_ref = std::max(max_ref, std::fabs(v));
  double err2 = 0.0, ref2 = 0.0;
  int64_t num_bad = 0, num_nan = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < dim; ++c) {
      const double want = ref[r * dim + c];
      const double got = out.at(r, c);
      if (std::isnan(got)) {
        if (num_nan++ < 3)
          ADD_FAILURE() << "element (" << r << ", " << c << ") is NaN (unwritten?)";
        continue;
      }
      const double diff = got - want;
      err2 += diff * diff;
      ref2 += want * want;
      if (std::fabs(diff) > rtol * std::fabs(want) + atol * max_ref && num_bad++ < 3) {
        ADD_FAILURE() << "element (" << r << ", " << c << "): got " << got << ", want " << want;
      }
    }
  }
  EXPECT_EQ(num_nan, 0) << "NaN elements";
  EXPECT_EQ(num_bad, 0) << "elements outside rtol " << rtol << " / atol " << atol;
  const double rel = ref2 > 0.0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  EXPECT_LE(rel, max_rel) << "||out - ref|| / ||ref||";
}

// Tolerances by the dtype of the tensor being checked.
struct Tolerance {
  double max_rel, rtol, atol;
};
inline Tolerance tolerance_for(DType t) {
  // bf16 rounds to 8 significant bits (relative error up to 2^-8 per rounding); f32 paths
  // differ from an f64 reference only by f32 arithmetic.
  return t == DType::kBF16 ? Tolerance{1e-2, 1.0 / 128, 1e-3} : Tolerance{1e-4, 1e-4, 1e-6};
}

// A non-blocking stream owned by a test.
class TestStream {
 public:
  TestStream() { SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~TestStream() { SLUICE_CUDA_CHECK(cudaStreamDestroy(stream_)); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// A CUDA graph of what `enqueue` queues on `stream` while it is captured in `mode`
// (cudaStreamCaptureModeGlobal also makes any allocation or synchronisation, on any thread,
// fail the capture), instantiated; destroyed with the object.
class CapturedGraph {
 public:
  CapturedGraph(cudaStream_t stream, cudaStreamCaptureMode mode,
                const std::function<void(cudaStream_t)>& enqueue) {
    SLUICE_CUDA_CHECK(cudaStreamBeginCapture(stream, mode));
    enqueue(stream);
    SLUICE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph_));
    SLUICE_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  }
  ~CapturedGraph() {
    SLUICE_CUDA_CHECK(cudaGraphExecDestroy(exec_));
    SLUICE_CUDA_CHECK(cudaGraphDestroy(graph_));
  }
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;

  // Launches the graph on `stream` and waits for it to finish.
  void replay(cudaStream_t stream) const {
    SLUICE_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// ---- Argument checks: they run without a device, on views that point nowhere.

// A contiguous view at a made-up `address`; the checks never dereference it.
inline Tensor fake(uintptr_t address, DType t, std::initializer_list<int64_t> shape,
                   Device device = Device::kCuda) {
  return Tensor::make(reinterpret_cast<void*>(address), t, shape, device);
}

// `s` is an InvalidArgument error whose message contains every one of `parts`.
inline void expect_invalid(const Status& s, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(s.is_ok()) << "expected an error mentioning " << *parts.begin();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  for (const char* part : parts) EXPECT_THAT(s.message(), ::testing::HasSubstr(part));
}

}  // namespace sluice::kernels::cuda::testing
