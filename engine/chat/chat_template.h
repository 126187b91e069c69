#pragma once
// Chat templates: a sandboxed interpreter for the Jinja subset that chat templates use
// (Gemma 3, Gemma 4 and their kin), rendering exactly what transformers'
// `apply_chat_template` renders. Data flow: the front end builds the context JSON
// (`messages`, `tools`, `add_generation_prompt`, `bos_token`, `eos_token`,
// `enable_thinking`, ...), render() turns it into prompt text, and the tokenizer takes it
// from there.
//
// Templates may come from a model file or from an operator, so rendering is bounded
// (RELIABILITY.md item 14): every render has a step, loop, macro-depth and output budget,
// and a template can reach nothing but the context it is given (no attribute walks into
// host objects, no I/O). Exceeding a budget is an INVALID_ARGUMENT naming the limit, never a
// crash, a hang or a huge allocation.

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::chat {

namespace jinja {
struct Program;
}

// Budgets for one render. Defaults fit long real conversations (hundreds of turns, dozens of
// tools) with room to spare; a template that passes one is almost surely hostile.
struct TemplateLimits {
  // Statements and expressions evaluated, plus bulk work: 1 step per element copied, sorted
  // or compared, and per 64 bytes of text built.
  int64_t max_steps = 1'000'000;
  int64_t max_loop_iterations = 100'000;  // summed over all loops of one render
  int32_t max_macro_depth = 64;           // nested (or recursive) macro calls
  // Rendered text, and also any one string built on the way.
  int64_t max_output_bytes = 4 << 20;
};

class ChatTemplate {
 public:
  // Parses `source`. INVALID_ARGUMENT with "line L, column C: ..." for a syntax error, an
  // unknown tag, filter or test, or nesting deeper than the parser allows.
  static StatusOr<ChatTemplate> compile(std::string_view source, const TemplateLimits& limits = {});

  // Renders with the context's top-level keys as variables. `raise_exception(msg)` in the
  // template gives INVALID_ARGUMENT with exactly `msg`; any other failure (undefined
  // attribute access, type errors, exceeded limits) gives INVALID_ARGUMENT naming the
  // template line and the cause. Thread-safe: any number of threads may render one compiled
  // template at once. Use ordered_json to keep the caller's key order where a template
  // iterates a mapping or dumps it with `tojson` (nlohmann::json sorts keys).
  StatusOr<std::string> render(const nlohmann::json& context) const;
  StatusOr<std::string> render(const nlohmann::ordered_json& context) const;

  const TemplateLimits& limits() const { return limits_; }

 private:
  ChatTemplate(std::shared_ptr<const jinja::Program> program, const TemplateLimits& limits)
      : program_(std::move(program)), limits_(limits) {}

  std::shared_ptr<const jinja::Program> program_;
  TemplateLimits limits_;
};

}  // namespace sluice::chat
