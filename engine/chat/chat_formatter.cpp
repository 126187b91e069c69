#include "engine/chat/chat_formatter.h"

#include <nlohmann/json.hpp>

#include "engine/chat/gemma3_chat.h"

namespace sluice::chat {

StatusOr<ChatFormatter> ChatFormatter::create(const std::optional<std::string>& template_source,
                                              const TemplateLimits& limits) {
  ChatFormatter f;
  if (template_source.has_value()) {
    SLUICE_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::compile(*template_source, limits));
    f.tmpl_ = std::move(t);
  }
  return f;
}

StatusOr<std::string> ChatFormatter::render(std::span<const ChatMessage> messages,
                                            const ChatRenderOptions& options) const {
  if (!tmpl_.has_value()) {
    return render_gemma3_chat(messages, options.add_generation_prompt, options.bos_token);
  }
  // The context transformers builds: messages as OpenAI-style dicts, the special tokens'
  // text, add_generation_prompt, and the template's own switches.
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    nlohmann::ordered_json j;
    j["role"] = m.role;
    if (m.content.has_value()) {
      j["content"] = *m.content;
    } else {
      nlohmann::ordered_json parts = nlohmann::ordered_json::array();
      for (const ContentPart& p : m.parts) {
        nlohmann::ordered_json part;
        part["type"] = p.type;
        if (p.type == "text") part["text"] = p.text;
        parts.push_back(std::move(part));
      }
      j["content"] = std::move(parts);
    }
    msgs.push_back(std::move(j));
  }
  nlohmann::ordered_json ctx;
  ctx["messages"] = std::move(msgs);
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = options.add_generation_prompt;
  ctx["bos_token"] = options.bos_token;
  ctx["eos_token"] = options.eos_token;
  ctx["pad_token"] = "<pad>";
  ctx["unk_token"] = "<unk>";
  if (options.enable_thinking.has_value()) ctx["enable_thinking"] = *options.enable_thinking;
  return tmpl_->render(ctx);
}

}  // namespace sluice::chat
