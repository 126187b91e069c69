// libFuzzer harness for the chat-template interpreter: compiles the input as a template and
// renders it against a fixed chat context under small limits. Any input must end in a result
// or a Status: never a crash, a hang, unbounded memory, or a sanitizer report.
//
// Seeds: ../shared/data/chat-templates/*.jinja and tools/gemma3_chat_template.jinja.
// Dictionary: tests/fuzz/fuzz_chat_template.dict.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "engine/chat/chat_template.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "bos_token": "<bos>", "eos_token": "<eos>", "add_generation_prompt": true,
    "enable_thinking": true,
    "messages": [
      {"role": "system", "content": "  Be brief. \u00e9\u6771 "},
      {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]},
      {"role": "assistant", "content": "<|channel>thought\nx<channel|>ok",
       "reasoning_content": "r",
       "tool_calls": [{"type": "function", "function": {"name": "f",
                       "arguments": {"a": [1, 2.5, true, null, {"b": "c"}]}}}]},
      {"role": "tool", "tool_responses": [{"name": "f", "response": {"k": -1}}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object", "required": ["a"],
                 "properties": {"a": {"type": "array", "items": {"type": "string"}},
                                "e": {"type": "string", "enum": ["x", "y"]}}}}}]
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::chat::TemplateLimits limits;
  limits.max_steps = 20'000;
  limits.max_loop_iterations = 2'000;
  limits.max_macro_depth = 16;
  limits.max_output_bytes = 1 << 16;
  std::string_view source(reinterpret_cast<const char*>(data), size);
  sluice::StatusOr<sluice::chat::ChatTemplate> tmpl =
      sluice::chat::ChatTemplate::compile(source, limits);
  // INTERNAL means an unexpected C++ exception was caught at the API boundary: a bug.
  if (!tmpl.is_ok() && tmpl.status().code() == sluice::StatusCode::kInternal) std::abort();
  if (tmpl.is_ok()) {
    sluice::StatusOr<std::string> out = tmpl->render(context());
    if (!out.is_ok() && out.status().code() == sluice::StatusCode::kInternal) std::abort();
  }
  return 0;
}
