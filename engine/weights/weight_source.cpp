// WeightSource: builds the format-independent WeightInfo table from a GGUF file or a
// safetensors set.

#include "engine/weights/weight_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

namespace sluice::weights {

const char* source_dtype_name(SourceDType t) { return ggml_type_name(to_ggml_type(t)); }

bool is_quantized(SourceDType t) {
  return t != SourceDType::kF32 && t != SourceDType::kF16 && t != SourceDType::kBF16;
}

GgmlType to_ggml_type(SourceDType t) {
  switch (t) {
    case SourceDType::kF32:
      return GgmlType::kF32;
    case SourceDType::kF16:
      return GgmlType::kF16;
    case SourceDType::kBF16:
      return GgmlType::kBF16;
    case SourceDType::kQ4_0:
      return GgmlType::kQ4_0;
    case SourceDType::kQ4_1:
      return GgmlType::kQ4_1;
    case SourceDType::kQ5_0:
      return GgmlType::kQ5_0;
    case SourceDType::kQ5_1:
      return GgmlType::kQ5_1;
    case SourceDType::kQ8_0:
      return GgmlType::kQ8_0;
    case SourceDType::kQ4_K:
      return GgmlType::kQ4_K;
    case SourceDType::kQ5_K:
      return GgmlType::kQ5_K;
    case SourceDType::kQ6_K:
      return GgmlType::kQ6_K;
  }
  return GgmlType::kF32;
}

SourceDType from_ggml_type(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return SourceDType::kF32;
    case GgmlType::kF16:
      return SourceDType::kF16;
    case GgmlType::kBF16:
      return SourceDType::kBF16;
    case GgmlType::kQ4_0:
      return SourceDType::kQ4_0;
    case GgmlType::kQ4_1:
      return SourceDType::kQ4_1;
    case GgmlType::kQ5_0:
      return SourceDType::kQ5_0;
    case GgmlType::kQ5_1:
      return SourceDType::kQ5_1;
    case GgmlType::kQ8_0:
      return SourceDType::kQ8_0;
    case GgmlType::kQ4_K:
      return SourceDType::kQ4_K;
    case GgmlType::kQ5_K:
      return SourceDType::kQ5_K;
    case GgmlType::kQ6_K:
      return SourceDType::kQ6_K;
  }
  return SourceDType::kF32;
}

uint64_t WeightInfo::row_bytes() const {
  uint64_t inner = shape.empty() ? 1 : static_cast<uint64_t>(shape.back());
  return ggml_row_bytes(to_ggml_type(dtype), inner).value_or(0);
}

std::string WeightInfo::shape_string() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

WeightSource::~WeightSource() = default;

std::unique_ptr<WeightSource> WeightSource::from_gguf(std::unique_ptr<GgufFile> file) {
  std::unique_ptr<WeightSource> src(new WeightSource());
  src->format_ = Format::kGguf;
  src->path_ = file->name();
  src->gguf_ = std::shared_ptr<GgufFile>(std::move(file));
  // The mapping when there is one, else the GgufFile (whose caller owns the bytes).
  std::shared_ptr<const void> keep = src->gguf_->keep_alive();
  if (!keep) keep = src->gguf_;
  src->infos_.reserve(src->gguf_->tensors().size());
  for (const auto& t : src->gguf_->tensors()) {
    WeightInfo w;
    w.name = t.name;
    w.shape.assign(t.ne.rbegin(), t.ne.rend());  // ne is innermost-first; shape is row-major
    w.dtype = from_ggml_type(t.type);
    w.data = t.data;
    w.nbytes = t.nbytes;
    w.num_elements = t.num_elements;
    w.keep_alive = keep;
    src->infos_.push_back(std::move(w));
  }
  std::sort(src->infos_.begin(), src->infos_.end(),
            [](const WeightInfo& a, const WeightInfo& b) { return a.name < b.name; });
  return src;
}

std::unique_ptr<WeightSource> WeightSource::from_safetensors(std::unique_ptr<SafetensorsSet> set,
                                                             std::string path) {
  std::unique_ptr<WeightSource> src(new WeightSource());
  src->format_ = Format::kSafetensors;
  src->path_ = std::move(path);
  src->safetensors_ = std::shared_ptr<SafetensorsSet>(std::move(set));
  for (const auto& name : src->safetensors_->names()) {
    const SafetensorsFile* shard = nullptr;
    const SafetensorsTensor* t = src->safetensors_->find(name, &shard);
    WeightInfo w;
    w.name = name;
    w.shape = t->shape;
    switch (t->dtype) {
      case SafetensorsDType::kF32:
        w.dtype = SourceDType::kF32;
        break;
      case SafetensorsDType::kF16:
        w.dtype = SourceDType::kF16;
        break;
      case SafetensorsDType::kBF16:
        w.dtype = SourceDType::kBF16;
        break;
    }
    w.data = t->data;
    w.nbytes = t->nbytes();
    w.num_elements = t->num_elements;
    w.keep_alive = shard->keep_alive();
    if (!w.keep_alive) w.keep_alive = src->safetensors_;
    src->infos_.push_back(std::move(w));
  }
  return src;  // names() is sorted already
}

StatusOr<std::unique_ptr<WeightSource>> WeightSource::open_gguf(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(auto file, GgufFile::open(path));
  return from_gguf(std::move(file));
}

StatusOr<std::unique_ptr<WeightSource>> WeightSource::open_safetensors_dir(const std::string& dir) {
  SLUICE_ASSIGN_OR_RETURN(auto set, SafetensorsSet::open_dir(dir));
  return from_safetensors(std::move(set), dir);
}

StatusOr<std::unique_ptr<WeightSource>> WeightSource::open_safetensors_file(
    const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(auto set, SafetensorsSet::open_file(path));
  return from_safetensors(std::move(set), path);
}

StatusOr<std::unique_ptr<WeightSource>> WeightSource::open(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return open_safetensors_dir(path);
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".safetensors.index.json")) {
    SLUICE_ASSIGN_OR_RETURN(auto set, SafetensorsSet::open_index(path));
    return from_safetensors(std::move(set), path);
  }
  if (ends_with(".safetensors")) return open_safetensors_file(path);
  return open_gguf(path);
}

const WeightInfo* WeightSource::find(std::string_view name) const {
  auto it = std::lower_bound(infos_.begin(), infos_.end(), name,
                             [](const WeightInfo& w, std::string_view n) { return w.name < n; });
  return it != infos_.end() && it->name == name ? &*it : nullptr;
}

StatusOr<const WeightInfo*> WeightSource::get(std::string_view name) const {
  const WeightInfo* w = find(name);
  if (!w) return Status::not_found(fmt::format("{}: no tensor named '{}'", path_, name));
  return w;
}

std::vector<std::string> WeightSource::names() const {
  std::vector<std::string> out;
  out.reserve(infos_.size());
  for (const auto& w : infos_) out.push_back(w.name);
  return out;
}

}  // namespace sluice::weights
