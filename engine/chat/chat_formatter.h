#pragma once
// ChatFormatter: turns a conversation into prompt text the way the model expects. A model
// that ships a chat template (tokenizer_config.json's `chat_template`, chat_template.jinja,
// or a GGUF's tokenizer.chat_template) is rendered with it, through the sandboxed Jinja
// interpreter, as transformers' apply_chat_template would; a model without one (the default
// 270M GGUF) gets the built-in Gemma 3 format. `sluice generate --chat` and the chat
// completions endpoint share it.

#include <optional>
#include <span>
#include <string>

#include "common/status.h"
#include "engine/chat/chat_message.h"
#include "engine/chat/chat_template.h"

namespace sluice::chat {

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  std::string bos_token = "<bos>";
  std::string eos_token = "<eos>";
  std::optional<bool> enable_thinking;  // passed to the template when set (Gemma 4)
};

class ChatFormatter {
 public:
  // `template_source`: the model's template text, or nullopt for the built-in format.
  // INVALID_ARGUMENT (line and column) when the template does not parse.
  static StatusOr<ChatFormatter> create(const std::optional<std::string>& template_source,
                                        const TemplateLimits& limits = {});

  // The prompt text, BOS text included as the template writes it (tokenize it with special
  // tokens parsed and no extra BOS). INVALID_ARGUMENT for a conversation the template or the
  // built-in format refuses (the template's own raise_exception message, or the reason).
  StatusOr<std::string> render(std::span<const ChatMessage> messages, const ChatRenderOptions& options) const;

  bool uses_model_template() const { return tmpl_.has_value(); }

 private:
  std::optional<ChatTemplate> tmpl_;
};

}  // namespace sluice::chat
