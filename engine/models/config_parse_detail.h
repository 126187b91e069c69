#pragma once
// Internal to engine/models: the JSON helpers that model_config.cpp (Gemma 3, GGUF) and
// gemma4_config.cpp (Gemma 4) share when parsing a config.json. Not a public interface.

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/models/model_config.h"

namespace sluice::models::detail {

using nlohmann::json;

// Bounds that keep every derived size far from overflow; real models sit well inside them.
inline constexpr int kMaxHidden = 65536;
inline constexpr int kMaxLayers = 512;
inline constexpr int kMaxHeads = 1024;
inline constexpr int kMaxHeadDim = 1024;
inline constexpr int kMaxVocab = 1 << 22;
inline constexpr int kMaxIntermediate = 1 << 20;
inline constexpr int kMaxContext = 1 << 24;

class JsonReader {
 public:
  JsonReader(const json& obj, std::string_view where) : obj_(obj), where_(where) {}

  bool has(const char* key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }

  Status int_in(const char* key, int lo, int hi, int* out, std::optional<int> fallback) const {
    if (!has(key)) {
      if (fallback) {
        *out = *fallback;
        return Status::ok();
      }
      return Status::invalid_argument(fmt::format("{}: missing required key '{}'", where_, key));
    }
    const json& v = obj_.at(key);
    if (!v.is_number_integer()) {
      return Status::invalid_argument(
          fmt::format("{}: '{}' must be an integer, got {}", where_, key, v.dump()));
    }
    int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) {
      return Status::invalid_argument(
          fmt::format("{}: '{}' is {}, supported range [{}, {}]", where_, key, x, lo, hi));
    }
    *out = static_cast<int>(x);
    return Status::ok();
  }

  Status float_in(const char* key, double lo, double hi, float* out,
                  std::optional<double> fallback) const {
    if (!has(key)) {
      if (fallback) {
        *out = static_cast<float>(*fallback);
        return Status::ok();
      }
      return Status::invalid_argument(fmt::format("{}: missing required key '{}'", where_, key));
    }
    const json& v = obj_.at(key);
    if (!v.is_number()) {
      return Status::invalid_argument(
          fmt::format("{}: '{}' must be a number, got {}", where_, key, v.dump()));
    }
    double x = v.get<double>();
    if (!(x >= lo && x <= hi)) {
      return Status::invalid_argument(
          fmt::format("{}: '{}' is {}, supported range [{}, {}]", where_, key, x, lo, hi));
    }
    *out = static_cast<float>(x);
    return Status::ok();
  }

  std::string_view where() const { return where_; }
  const json& obj() const { return obj_; }

 private:
  const json& obj_;
  std::string_view where_;
};

// Rotate-half rope over the whole head.
RopeConfig full_rope(int head_dim, float theta, float freq_scale);
// One rope_parameters entry: {"rope_type": default|linear|proportional, "rope_theta", ...}.
StatusOr<RopeConfig> parse_rope_entry(const json& entry, int head_dim, std::string_view where,
                                      std::string_view label);
// eos_token_id as an integer or a list (default {1}).
Status parse_eos(const json& cfg, std::string_view where, std::vector<int32_t>* out);

// `layer_types` (a list of sliding_attention / full_attention, one per layer) when present,
// else every `period`-th layer global: layer i is global iff (i + 1) % period == 0.
StatusOr<std::vector<LayerType>> parse_layer_types(const json& cfg, int num_layers, int period,
                                                   std::string_view where);
// Cross-field checks every parsed config must pass.
Status validate(const ModelConfig& c, std::string_view where);

// A `gemma4_text` config object (the text_config of a `gemma4` one).
StatusOr<ModelConfig> parse_gemma4_text(const json& cfg, std::string_view where);

}  // namespace sluice::models::detail
