// safetensors parsing: the header of one file, and sharded sets through their index.

#include "engine/weights/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>

#include "common/check.h"
#include "common/checked_math.h"
#include "engine/weights/json_strict.h"
#include "engine/weights/printable.h"

namespace sluice::weights {

const char* safetensors_dtype_name(SafetensorsDType t) {
  switch (t) {
    case SafetensorsDType::kF32:
      return "F32";
    case SafetensorsDType::kF16:
      return "F16";
    case SafetensorsDType::kBF16:
      return "BF16";
  }
  return "?";
}

size_t safetensors_dtype_size(SafetensorsDType t) { return t == SafetensorsDType::kF32 ? 4 : 2; }

namespace {

using nlohmann::json;

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// A JSON number that is a non-negative integer (nlohmann parses those as unsigned).
bool as_unsigned(const json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

// Reads one tensor entry of the header into `t` (name already set); offsets unchecked.
Status parse_entry(std::string_view file, const json& entry, SafetensorsTensor* t) {
  const std::string name = printable(t->name);  // for messages
  if (!entry.is_object()) {
    return Status::data_loss(
        fmt::format("{}: tensor '{}' entry is not an object ({})", file, name, entry.type_name()));
  }
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || shape_it == entry.end() || offsets_it == entry.end()) {
    return Status::data_loss(
        fmt::format("{}: tensor '{}' lacks one of dtype, shape, data_offsets", file, name));
  }
  if (!dtype_it->is_string()) {
    return Status::data_loss(fmt::format("{}: tensor '{}' dtype is not a string", file, name));
  }
  const std::string& dtype = dtype_it->get_ref<const std::string&>();
  if (dtype == "F32") {
    t->dtype = SafetensorsDType::kF32;
  } else if (dtype == "F16") {
    t->dtype = SafetensorsDType::kF16;
  } else if (dtype == "BF16") {
    t->dtype = SafetensorsDType::kBF16;
  } else {
    std::string shown = printable(dtype, 32);
    return Status::unimplemented(fmt::format(
        "{}: tensor '{}' dtype {} not supported (supported: F32, F16, BF16)", file, name, shown));
  }
  if (!shape_it->is_array() || shape_it->size() > kSafetensorsMaxDims) {
    return Status::data_loss(fmt::format(
        "{}: tensor '{}' shape is not an array of at most {} dims ({}, limit {})", file, name,
        kSafetensorsMaxDims, shape_it->is_array() ? shape_it->size() : 0, kSafetensorsMaxDims));
  }
  uint64_t num_elements = 1;
  for (const json& dim : *shape_it) {
    uint64_t d = 0;
    if (!as_unsigned(dim, &d) || d > kInt64Max) {
      return Status::data_loss(
          fmt::format("{}: tensor '{}' shape has a dim that is not an integer in [0, {}] ({})",
                      file, name, kInt64Max, printable(dim.dump(), 48)));
    }
    t->shape.push_back(static_cast<int64_t>(d));
    auto prod = checked_mul(num_elements, d);
    if (!prod || *prod > kInt64Max) {
      return Status::data_loss(fmt::format("{}: tensor '{}' element count overflows ({}, limit {})",
                                           file, name, shape_it->dump(), kInt64Max));
    }
    num_elements = *prod;
  }
  t->num_elements = num_elements;
  if (!offsets_it->is_array() || offsets_it->size() != 2 ||
      !as_unsigned((*offsets_it)[0], &t->begin) || !as_unsigned((*offsets_it)[1], &t->end)) {
    return Status::data_loss(
        fmt::format("{}: tensor '{}' data_offsets is not two non-negative integers ({})", file,
                    name, printable(offsets_it->dump(), 64)));
  }
  if (t->end < t->begin) {
    return Status::data_loss(
        fmt::format("{}: tensor '{}' data_offsets end before begin ({}, limit {})", file, name,
                    t->end, t->begin));
  }
  auto nbytes = checked_mul(num_elements, safetensors_dtype_size(t->dtype));
  if (!nbytes || *nbytes != t->end - t->begin) {
    return Status::data_loss(
        fmt::format("{}: tensor '{}' data_offsets span does not match shape {} x {} ({}, limit {})",
                    file, name, shape_it->dump(), dtype, t->end - t->begin,
                    nbytes ? fmt::to_string(*nbytes) : std::string("overflow")));
  }
  return Status::ok();
}

}  // namespace

Status SafetensorsFile::parse_header(const uint8_t* data, uint64_t size) {
  if (size < 8) {
    return Status::data_loss(
        fmt::format("{}: file too short for the header length ({}, limit 8)", name_, size));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  uint64_t limit = std::min<uint64_t>(kSafetensorsMaxHeaderBytes, size - 8);
  if (header_len > limit) {
    return Status::data_loss(
        fmt::format("{}: header length larger than the file or the cap ({}, limit {})", name_,
                    header_len, limit));
  }
  std::string_view text(reinterpret_cast<const char*>(data + 8), header_len);
  if (text.empty() || text.front() != '{') {
    return Status::data_loss(fmt::format("{}: header is not a JSON object", name_));
  }
  SLUICE_ASSIGN_OR_RETURN(json header, parse_json_strict(text, name_, kSafetensorsMaxJsonDepth));
  if (!header.is_object()) {
    return Status::data_loss(fmt::format("{}: header is not a JSON object", name_));
  }
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) {
        return Status::data_loss(fmt::format("{}: __metadata__ is not an object", name_));
      }
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          return Status::data_loss(fmt::format("{}: __metadata__ value of '{}' is not a string",
                                               name_, printable(m.key())));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsTensor t;
    t.name = it.key();
    if (t.name.empty()) return Status::data_loss(fmt::format("{}: empty tensor name", name_));
    SLUICE_RETURN_IF_ERROR(parse_entry(name_, it.value(), &t));
    tensors_.push_back(std::move(t));
  }
  // Sorted by offset, the tensors must tile [0, data_size) exactly.
  std::stable_sort(tensors_.begin(), tensors_.end(),
                   [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t expected = 0;
  for (auto& t : tensors_) {
    if (t.begin != expected) {
      return Status::data_loss(fmt::format(
          "{}: tensor '{}' data_offsets out of order, overlapping or leaving a gap ({}, limit {})",
          name_, printable(t.name), t.begin, expected));
    }
    if (t.end > data_size) {
      return Status::data_loss(
          fmt::format("{}: tensor '{}' ends past the data region ({}, limit {})", name_,
                      printable(t.name), t.end, data_size));
    }
    expected = t.end;
    t.data = data + data_start + t.begin;
  }
  if (expected != data_size) {
    return Status::data_loss(
        fmt::format("{}: data region size does not match the tensors ({}, limit {})", name_,
                    data_size, expected));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  return Status::ok();
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(
    std::string_view name, const uint8_t* data, uint64_t size,
    std::shared_ptr<const void> keep_alive) {
  if (data == nullptr && size != 0) {
    return Status::invalid_argument(fmt::format("{}: null data with size {}", name, size));
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->name_ = std::string(name);
  SLUICE_RETURN_IF_ERROR(f->parse_header(data, size));
  f->keep_alive_ = std::move(keep_alive);
  return f;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapped, MappedFile::open(path));
  const uint8_t* data = mapped->data();
  uint64_t size = mapped->size();
  return parse(path, data, size, std::move(mapped));
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view tensor_name) const {
  auto it = index_.find(tensor_name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---- sets ----------------------------------------------------------------------------

Status SafetensorsSet::add_shard(std::unique_ptr<SafetensorsFile> shard) {
  size_t shard_index = shards_.size();
  for (const auto& t : shard->tensors()) {
    auto [it, inserted] = index_.emplace(t.name, std::make_pair(shard_index, &t));
    if (!inserted) {
      return Status::data_loss(fmt::format("{}: tensor '{}' is also in {} (2 copies, limit 1)",
                                           shard->name(), printable(t.name),
                                           shards_[it->second.first]->name()));
    }
  }
  shards_.push_back(std::move(shard));
  return Status::ok();
}

std::unique_ptr<SafetensorsSet> SafetensorsSet::from_file(std::unique_ptr<SafetensorsFile> file) {
  std::unique_ptr<SafetensorsSet> set(new SafetensorsSet());
  Status st = set->add_shard(std::move(file));
  // One file cannot hold a name twice: its header's duplicate keys were rejected.
  SLUICE_CHECK(st.is_ok(), "{}", st.message());
  return set;
}

StatusOr<std::unique_ptr<SafetensorsSet>> SafetensorsSet::open_file(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
  return from_file(std::move(file));
}

StatusOr<std::unique_ptr<SafetensorsSet>> SafetensorsSet::open_index(
    const std::string& index_path) {
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapped, MappedFile::open(index_path));
  if (mapped->size() > kSafetensorsMaxIndexBytes) {
    return Status::invalid_argument(fmt::format("{}: index file too large ({}, limit {})",
                                                index_path, mapped->size(),
                                                kSafetensorsMaxIndexBytes));
  }
  std::string_view text(reinterpret_cast<const char*>(mapped->data()), mapped->size());
  SLUICE_ASSIGN_OR_RETURN(json index,
                          parse_json_strict(text, index_path, kSafetensorsMaxJsonDepth));
  if (!index.is_object()) {
    return Status::invalid_argument(fmt::format("{}: index is not a JSON object", index_path));
  }
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    return Status::invalid_argument(
        fmt::format("{}: index has no \"weight_map\" object", index_path));
  }
  // Shard file name -> tensors mapped to it, in first-seen order of the shards.
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) {
      return Status::invalid_argument(fmt::format(
          "{}: weight_map entry '{}' is not a file name string", index_path, printable(it.key())));
    }
    const std::string& file = it.value().get_ref<const std::string&>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos || file.find('\0') != std::string::npos) {
      return Status::invalid_argument(
          fmt::format("{}: weight_map entry '{}' names a shard that is not a plain file name",
                      index_path, printable(it.key())));
    }
    by_shard[file].push_back(it.key());
  }
  if (by_shard.size() > kSafetensorsMaxShards) {
    return Status::invalid_argument(fmt::format("{}: too many shards ({}, limit {})", index_path,
                                                by_shard.size(), kSafetensorsMaxShards));
  }
  std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  std::unique_ptr<SafetensorsSet> set(new SafetensorsSet());
  for (const auto& [file, names] : by_shard) {
    std::string shard_path = (dir / file).string();
    auto shard = SafetensorsFile::open(shard_path);
    if (!shard.is_ok()) {
      return Status(shard.status().code(),
                    fmt::format("{} (shard named by {})", shard.status().message(), index_path));
    }
    for (const auto& name : names) {
      if ((*shard)->find(name) == nullptr) {
        return Status::data_loss(fmt::format("{}: tensor '{}' is mapped to {} but is not in it",
                                             index_path, printable(name), printable(shard_path)));
      }
    }
    SLUICE_RETURN_IF_ERROR(set->add_shard(std::move(shard).value()));
  }
  return set;
}

StatusOr<std::unique_ptr<SafetensorsSet>> SafetensorsSet::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index, ec)) return open_index(index.string());
  fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single, ec)) return open_file(single.string());
  return Status::not_found(fmt::format(
      "{}: no model.safetensors.index.json or model.safetensors in this directory", dir));
}

const SafetensorsTensor* SafetensorsSet::find(std::string_view name,
                                              const SafetensorsFile** shard) const {
  auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  if (shard) *shard = shards_[it->second.first].get();
  return it->second.second;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, where] : index_) out.push_back(name);
  return out;
}

}  // namespace sluice::weights
