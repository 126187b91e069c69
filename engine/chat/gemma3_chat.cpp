#include "engine/chat/gemma3_chat.h"

#include <fmt/format.h>

namespace sluice::chat {

StatusOr<std::string> render_gemma3_chat(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt, std::string_view bos_token) {
  std::string out(bos_token);
  std::string first_user_prefix;
  size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    const ChatMessage& sys = messages[0];
    // The system text is not trimmed; only its first text part counts when it has parts.
    if (sys.content) {
      first_user_prefix = *sys.content + "\n\n";
    } else if (!sys.parts.empty()) {
      first_user_prefix = sys.parts[0].text + "\n\n";
    } else {
      return Status::invalid_argument("messages[0]: system message has no content");
    }
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const size_t turn = i - first;
    if ((m.role == "user") != (turn % 2 == 0)) {
      return Status::invalid_argument(
          "Conversation roles must alternate user/assistant/user/assistant/...");
    }
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>";
    out += role;
    out += '\n';
    if (turn == 0) out += first_user_prefix;
    if (m.content) {
      out += python_strip(*m.content);
    } else {
      for (const ContentPart& p : m.parts) {
        if (p.type == "image") {
          out += "<start_of_image>";
        } else if (p.type == "text") {
          out += python_strip(p.text);
        }
      }
    }
    out += "<end_of_turn>\n";
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

}  // namespace sluice::chat
