#pragma once
// The built-in Gemma 3 chat format (gemma-models.md §1.5), used when a model carries no chat
// template of its own (the default 270M GGUF carries none). It renders what the official
// Jinja template renders: BOS text first, a system message folded into the first user turn,
// strictly alternating user/model turns, trimmed contents, images as <start_of_image>.

#include <span>
#include <string>

#include "common/status.h"
#include "engine/chat/chat_message.h"

namespace sluice::chat {

// INVALID_ARGUMENT when roles do not alternate user/assistant (after an optional leading
// system message) or a message has neither content nor parts.
StatusOr<std::string> render_gemma3_chat(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt,
                                         std::string_view bos_token = "<bos>");

}  // namespace sluice::chat
