#include "engine/weights/json_strict.h"

#include <fmt/format.h>

#include <set>
#include <string>
#include <vector>

#include "engine/weights/printable.h"

namespace sluice::weights {

namespace {

// Thrown from the parser callback to stop parsing; never leaves this file.
struct JsonRejected {
  std::string what;
};

}  // namespace

StatusOr<nlohmann::json> parse_json_strict(std::string_view text, std::string_view name,
                                           int max_depth) {
  using nlohmann::json;
  std::vector<std::set<std::string, std::less<>>> keys;  // one set per open object
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (depth > max_depth) {
      throw JsonRejected{fmt::format("JSON nested too deeply ({}, limit {})", depth, max_depth)};
    }
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string* key = parsed.get_ptr<const std::string*>();
        if (key != nullptr && !keys.empty() && !keys.back().insert(*key).second) {
          throw JsonRejected{
              fmt::format("duplicate JSON key '{}' (2 copies, limit 1)", printable(*key))};
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const JsonRejected& e) {
    return Status::data_loss(fmt::format("{}: {}", name, e.what));
  } catch (const json::exception& e) {
    return Status::data_loss(fmt::format("{}: invalid JSON: {}", name, printable(e.what(), 200)));
  } catch (const std::exception& e) {
    return Status::data_loss(
        fmt::format("{}: cannot parse JSON: {}", name, printable(e.what(), 200)));
  }
}

}  // namespace sluice::weights
