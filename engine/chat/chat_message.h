#pragma once
// A chat conversation as the front ends hand it to a chat template.

#include <optional>
#include <string>
#include <vector>

namespace sluice::chat {

struct ContentPart {
  std::string type;  // "text" or "image"
  std::string text;  // for "text"
};

struct ChatMessage {
  std::string role;                    // "system", "user", "assistant", ...
  std::optional<std::string> content;  // plain string content, or
  std::vector<ContentPart> parts;      // a list of typed parts (when content is absent)
};

// Python's str.strip() with no arguments (what Jinja's `trim` filter does): removes leading
// and trailing Unicode whitespace (str.isspace), decoding UTF-8 (jinja_text.h).
std::string python_strip(std::string_view s);

}  // namespace sluice::chat
