#pragma once
// WeightSource: one view over a model's weights, whatever the file format (a GGUF file, a
// safetensors file, or a sharded safetensors set), so model code asks for a tensor by its
// format's name and gets a row-major shape, a dtype and the bytes in the mapped file.
//
// Data flow: files -> (GgufFile | SafetensorsSet) -> WeightSource::find() -> WeightInfo ->
// load_as()/load_as_f32() -> OwnedTensor (a kernels::Tensor plus what keeps it alive) ->
// the model's weight structs. The mapped files stay alive as long as the WeightSource or
// any WeightInfo copy / OwnedTensor that came from it.
//
// Shapes: GGUF's ne is innermost-first, so it is reversed here: an HF Linear [out, in] is
// ne = [in, out] in GGUF and shape = [out, in] in WeightInfo, for both formats. Model code
// checks shapes itself against its config.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/weights/gguf.h"
#include "engine/weights/safetensors.h"
#include "kernels/tensor.h"

namespace sluice::weights {

// The storage type of a weight in its file. Quantized types come only from GGUF.
enum class SourceDType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ8_0,
  kQ4_K,
  kQ5_K,
  kQ6_K,
};
const char* source_dtype_name(SourceDType t);  // "F32", "Q4_K", ...
bool is_quantized(SourceDType t);              // not F32/F16/BF16
GgmlType to_ggml_type(SourceDType t);
SourceDType from_ggml_type(GgmlType t);

struct WeightInfo {
  std::string name;
  std::vector<int64_t> shape;  // row-major, HF order: [out, in]; empty for a scalar
  SourceDType dtype = SourceDType::kF32;
  const uint8_t* data = nullptr;  // into the mapped file: read-only, any alignment
  uint64_t nbytes = 0;
  uint64_t num_elements = 0;
  // Keeps `data` mapped; shared with the WeightSource.
  std::shared_ptr<const void> keep_alive;

  // Bytes of one innermost row (shape.back() elements; whole quant blocks for GGUF).
  uint64_t row_bytes() const;
  std::string shape_string() const;  // "[1024, 640]"
};

// Immutable once opened: every const method may be called from any thread.
class WeightSource {
 public:
  enum class Format : uint8_t { kGguf, kSafetensors };

  // Maps and parses a GGUF file.
  static StatusOr<std::unique_ptr<WeightSource>> open_gguf(const std::string& path);
  // A directory with model.safetensors.index.json or model.safetensors (SafetensorsSet).
  static StatusOr<std::unique_ptr<WeightSource>> open_safetensors_dir(const std::string& dir);
  // A single .safetensors file.
  static StatusOr<std::unique_ptr<WeightSource>> open_safetensors_file(const std::string& path);
  // Picks by what `path` is: a directory -> safetensors dir, "*.safetensors" -> file,
  // "*.safetensors.index.json" -> sharded set, anything else -> GGUF.
  static StatusOr<std::unique_ptr<WeightSource>> open(const std::string& path);
  // Wraps already-parsed files (used by tests and the fuzzers).
  static std::unique_ptr<WeightSource> from_gguf(std::unique_ptr<GgufFile> file);
  static std::unique_ptr<WeightSource> from_safetensors(std::unique_ptr<SafetensorsSet> set,
                                                        std::string path);

  ~WeightSource();

  Format format() const { return format_; }
  const std::string& path() const { return path_; }
  // The tensor named `name`, or nullptr. Valid as long as this WeightSource.
  const WeightInfo* find(std::string_view name) const;
  // As find(), but NOT_FOUND naming the file and the tensor when absent.
  StatusOr<const WeightInfo*> get(std::string_view name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  size_t size() const { return infos_.size(); }
  // The GGUF file (metadata for config and tokenizer), or nullptr for safetensors.
  const GgufFile* gguf() const { return gguf_.get(); }
  const SafetensorsSet* safetensors() const { return safetensors_.get(); }

 private:
  WeightSource() = default;
  Format format_ = Format::kGguf;
  std::string path_;
  std::shared_ptr<GgufFile> gguf_;
  std::shared_ptr<SafetensorsSet> safetensors_;
  std::vector<WeightInfo> infos_;  // sorted by name
};

// A weight in memory in a compute dtype. `tensor` either points into the mapped file (a
// zero-copy view: never write through it) or into an owned 64-byte-aligned buffer;
// `storage` keeps whichever it is alive, so an OwnedTensor may outlive its WeightSource.
struct OwnedTensor {
  kernels::Tensor tensor;
  std::shared_ptr<const void> storage;
  bool borrowed = false;  // true when `tensor.data` is the mapped file itself
};

// The weight as `want` (F32, F16 or BF16), with the WeightInfo's shape (a scalar becomes
// [1]; rank must be <= kernels::kMaxDims). When the stored dtype already is `want` and the
// bytes are aligned for it, the result is a zero-copy view over the mapping; otherwise the
// weight is dequantized/converted (f32 intermediate, round-to-nearest-even to f16/bf16)
// into a new buffer. RESOURCE_EXHAUSTED if that buffer cannot be allocated.
StatusOr<OwnedTensor> load_as(const WeightInfo& info, kernels::DType want);
StatusOr<OwnedTensor> load_as_f32(const WeightInfo& info);

// Converts `num_elements` elements of `info` starting at element `first` (a multiple of the
// block size for quantized types, as is num_elements) to f32 in `dst`. For row-wise use
// without materialising a whole tensor (e.g. embedding lookups of a quantized table).
// INVALID_ARGUMENT when info's nbytes do not match its element count and dtype.
Status convert_to_f32(const WeightInfo& info, uint64_t first, uint64_t num_elements, float* dst);

}  // namespace sluice::weights
