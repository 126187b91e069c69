#pragma once
// Strict JSON parsing for model files (safetensors headers and indexes): nlohmann::json with
// its exceptions caught, plus what the library does not check itself — duplicate keys in an
// object and a nesting-depth bound. Other engine code reading model JSON (config.json,
// tokenizer.json) may use it too.

#include <nlohmann/json.hpp>
#include <string_view>

#include "common/status.h"

namespace sluice::weights {

// Parses `text`. DATA_LOSS naming `name` on a syntax error, invalid UTF-8, a duplicate key
// (by name) or nesting deeper than `max_depth`. Never throws.
StatusOr<nlohmann::json> parse_json_strict(std::string_view text, std::string_view name,
                                           int max_depth);

}  // namespace sluice::weights
