// The shared request validator: one test per rejection class of issue 5 ("Malformed
// requests") and RELIABILITY.md section A that applies to parsing, each checking the
// status, type and param; good requests of every shape mapping onto ParsedRequest and
// engine::Request; the context check in OpenAI's words; and random mutations of good bodies
// that must never crash and always give a well-formed answer.

#include "frontend/openai_request.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "frontend/utf8.h"

namespace sluice::frontend {
namespace {

using nlohmann::json;
constexpr Endpoint kChat = Endpoint::kChatCompletions;
constexpr Endpoint kCompl = Endpoint::kCompletions;

RequestLimits test_limits() {
  RequestLimits l;
  l.vocab_size = 1000;
  l.max_model_len = 128;
  return l;
}

// {"model": "m", "messages": [{"role": "user", "content": "hi"}], <extra>}
std::string chat_body(const std::string& extra = "") {
  std::string b = R"({"model": "m", "messages": [{"role": "user", "content": "hi"}])";
  if (!extra.empty()) b += ", " + extra;
  return b + "}";
}

// {"model": "m", "prompt": "hi", <extra>}
std::string completions_body(const std::string& extra = "") {
  std::string b = R"({"model": "m", "prompt": "hi")";
  if (!extra.empty()) b += ", " + extra;
  return b + "}";
}

std::string messages_body(const std::string& messages, const std::string& extra = "") {
  std::string b = R"({"model": "m", "messages": )" + messages;
  if (!extra.empty()) b += ", " + extra;
  return b + "}";
}

ParsedRequest parse_ok(Endpoint endpoint, const std::string& body,
                       const RequestLimits& limits = test_limits()) {
  auto r = parse_request(endpoint, body, limits);
  if (const ApiError* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << "rejected: " << e->message << " (param " << e->param.value_or("null")
                  << ")\nbody: " << body.substr(0, 300);
    return {};
  }
  return std::get<ParsedRequest>(std::move(r));
}

// Every error must serialize as OpenAI's body: valid UTF-8 throughout.
void expect_well_formed(const ApiError& e) {
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_FALSE(e.message.empty());
  EXPECT_TRUE(is_valid_utf8(e.message)) << e.message;
  if (e.param) {
    EXPECT_TRUE(is_valid_utf8(*e.param));
  }
  json body = {{"error",
                {{"message", e.message},
                 {"type", e.type},
                 {"param", e.param ? json(*e.param) : json(nullptr)},
                 {"code", e.code ? json(*e.code) : json(nullptr)}}}};
  EXPECT_NO_THROW((void)body.dump());
}

// Expects a 400 invalid_request_error naming `param` (nullopt: param null).
ApiError expect_rejected(Endpoint endpoint, const std::string& body,
                         std::optional<std::string> param,
                         const RequestLimits& limits = test_limits()) {
  auto r = parse_request(endpoint, body, limits);
  const ApiError* e = std::get_if<ApiError>(&r);
  if (e == nullptr) {
    ADD_FAILURE() << "accepted: " << body.substr(0, 300);
    return {};
  }
  expect_well_formed(*e);
  EXPECT_EQ(e->param, param) << "message: " << e->message << "\nbody: " << body.substr(0, 300);
  EXPECT_FALSE(e->code.has_value());
  return *e;
}

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// ---- Rejections -----------------------------------------------------------------------

TEST(OpenAiRequestTest, NonJsonBodies) {
  for (const char* body :
       {"", "not json", "{", "{\"model\": \"m\",}", "{} {}", "{'a': 1}", "\xEF\xBB\xBF"}) {
    SCOPED_TRACE(body);
    expect_rejected(kChat, body, std::nullopt);
  }
  // Truncated inside a value: the error names where it stopped.
  expect_rejected(kChat, R"({"model": "m", "messages": [)", "messages[0]");
  expect_rejected(kChat, R"({"model": "m", "temperature": )", "temperature");
}

TEST(OpenAiRequestTest, TopLevelNotAnObject) {
  for (const char* body : {"[]", "\"x\"", "null", "42", "true", "[{\"model\": \"m\"}]"}) {
    SCOPED_TRACE(body);
    ApiError e = expect_rejected(kChat, body, std::nullopt);
    EXPECT_NE(e.message.find("JSON object"), std::string::npos) << e.message;
  }
}

TEST(OpenAiRequestTest, WrongTypes) {
  struct Case {
    std::string extra, param;
  };
  for (const Case& c :
       std::vector<Case>{{R"("temperature": "0.5")", "temperature"},
                         {R"("max_tokens": "10")", "max_tokens"},
                         {R"("max_tokens": 10.0)", "max_tokens"},
                         {R"("max_tokens": 1e2)", "max_tokens"},
                         {R"("n": 2.5)", "n"},
                         {R"("n": true)", "n"},
                         {R"("stream": "true")", "stream"},
                         {R"("stream": 1)", "stream"},
                         {R"("stop": 5)", "stop"},
                         {R"("stop": ["a", 1])", "stop[1]"},
                         {R"("logprobs": 5)", "logprobs"},
                         {R"("top_k": 1.5)", "top_k"},
                         {R"("seed": "1")", "seed"},
                         {R"("user": 7)", "user"},
                         {R"("ignore_eos": "yes")", "ignore_eos"},
                         {R"("logit_bias": [])", "logit_bias"},
                         {R"("stream_options": true, "stream": true)", "stream_options"},
                         {R"("stream": true, "stream_options": {"include_usage": 1})",
                          "stream_options.include_usage"},
                         {R"("chat_template_kwargs": {"enable_thinking": "no"})",
                          "chat_template_kwargs.enable_thinking"},
                         {R"("chat_template_kwargs": [])", "chat_template_kwargs"},
                         {R"("stop_token_ids": 5)", "stop_token_ids"},
                         {R"("stop_token_ids": [1.0])", "stop_token_ids[0]"}}) {
    SCOPED_TRACE(c.extra);
    ApiError e = expect_rejected(kChat, chat_body(c.extra), c.param);
    EXPECT_NE(e.message.find("Invalid type for '" + c.param + "'"), std::string::npos) << e.message;
  }
  expect_rejected(kChat, R"({"model": 5, "messages": [{"role": "user", "content": "a"}]})",
                  "model");
  expect_rejected(kChat, R"({"model": "m", "messages": {"role": "user"}})", "messages");
  expect_rejected(kChat, R"({"model": "m", "messages": "hi"})", "messages");
  expect_rejected(kCompl, completions_body(R"("logprobs": true)"), "logprobs");
  expect_rejected(kCompl, completions_body(R"("echo": "yes")"), "echo");
  expect_rejected(kCompl, R"({"prompt": {"text": "hi"}})", "prompt");
  expect_rejected(kCompl, R"({"prompt": 5})", "prompt");
}

TEST(OpenAiRequestTest, MaxTokensNegativeZeroOrHuge) {
  for (const char* v : {"-1", "0", "2147483648", "9223372036854775808", "18446744073709551616",
                        "1e30", "-9223372036854775809"}) {
    SCOPED_TRACE(v);
    expect_rejected(kChat, chat_body(std::string("\"max_tokens\": ") + v), "max_tokens");
    expect_rejected(kCompl, completions_body(std::string("\"max_tokens\": ") + v), "max_tokens");
    expect_rejected(kChat, chat_body(std::string("\"max_completion_tokens\": ") + v),
                    "max_completion_tokens");
  }
  expect_rejected(kChat, chat_body(R"("max_tokens": 5, "max_completion_tokens": 6)"),
                  "max_completion_tokens");
}

TEST(OpenAiRequestTest, NOutOfRange) {
  for (const char* v : {"0", "-1", "17", "1000000000", "2147483648", "1e9"}) {
    SCOPED_TRACE(v);
    expect_rejected(kChat, chat_body(std::string("\"n\": ") + v), "n");
    expect_rejected(kCompl, completions_body(std::string("\"n\": ") + v), "n");
  }
  // best_of < n names n (RELIABILITY A4); best_of > n is not implemented.
  expect_rejected(kCompl, completions_body(R"("n": 2, "best_of": 1)"), "n");
  expect_rejected(kCompl, completions_body(R"("n": 1, "best_of": 2)"), "best_of");
}

TEST(OpenAiRequestTest, TemperatureNaNInfiniteOrNegative) {
  // JSON has no NaN or Infinity: the literals are syntax errors inside temperature's value.
  for (const char* v : {"NaN", "nan", "Infinity", "-Infinity", "inf"}) {
    SCOPED_TRACE(v);
    expect_rejected(kChat, chat_body(std::string("\"temperature\": ") + v), "temperature");
  }
  // A string "NaN" is a type error.
  ApiError e = expect_rejected(kChat, chat_body(R"("temperature": "NaN")"), "temperature");
  EXPECT_NE(e.message.find("expected a number"), std::string::npos) << e.message;
  // Out of range, beyond float, beyond double (nlohmann reports the overflow).
  for (const char* v : {"-1", "2.0001", "1e39", "-1e39", "1e400"}) {
    SCOPED_TRACE(v);
    expect_rejected(kChat, chat_body(std::string("\"temperature\": ") + v), "temperature");
  }
}

TEST(OpenAiRequestTest, OtherFloatRanges) {
  struct Case {
    std::string extra, param;
  };
  for (const Case& c : std::vector<Case>{{R"("top_p": 1.5)", "top_p"},
                                         {R"("top_p": 0)", "top_p"},
                                         {R"("top_k": -5)", "top_k"},
                                         {R"("top_k": 0)", "top_k"},
                                         {R"("top_k": 2147483648)", "top_k"},
                                         {R"("min_p": 1.1)", "min_p"},
                                         {R"("presence_penalty": 1e9)", "presence_penalty"},
                                         {R"("frequency_penalty": -1e9)", "frequency_penalty"},
                                         {R"("repetition_penalty": 0)", "repetition_penalty"},
                                         {R"("repetition_penalty": 2.5)", "repetition_penalty"},
                                         {R"("seed": 18446744073709551616)", "seed"},
                                         {R"("seed": 9223372036854775808)", "seed"},
                                         {R"("min_tokens": -1)", "min_tokens"},
                                         {R"("max_tokens": 4, "min_tokens": 5)", "min_tokens"}}) {
    SCOPED_TRACE(c.extra);
    ApiError e = expect_rejected(kChat, chat_body(c.extra), c.param);
    EXPECT_EQ(e.message.rfind(c.param, 0), 0u) << e.message;  // begins with the name
  }
}

TEST(OpenAiRequestTest, TokenIdsOutOfRange) {
  expect_rejected(kCompl, R"({"prompt": [1, 1000]})", "prompt[1]");
  expect_rejected(kCompl, R"({"prompt": [-1]})", "prompt[0]");
  expect_rejected(kCompl, R"({"prompt": [2147483648]})", "prompt[0]");
  expect_rejected(kCompl, R"({"prompt": [18446744073709551615]})", "prompt[0]");
  expect_rejected(kCompl, R"({"prompt": [[1], [2, 2147483648]]})", "prompt[1][1]");
  expect_rejected(kCompl, R"({"prompt": [[1], [-3]]})", "prompt[1][0]");
  expect_rejected(kCompl, completions_body(R"("stop_token_ids": [5, 1000])"), "stop_token_ids[1]");
  expect_rejected(kChat, chat_body(R"("stop_token_ids": [-1])"), "stop_token_ids[0]");
  // Shapes that mix the forms, or hold something else.
  expect_rejected(kCompl, R"({"prompt": [1, "a"]})", "prompt[1]");
  expect_rejected(kCompl, R"({"prompt": [1, 2.5]})", "prompt[1]");
  expect_rejected(kCompl, R"({"prompt": [1.5]})", "prompt[0]");
  expect_rejected(kCompl, R"({"prompt": ["a", 1]})", "prompt[1]");
  expect_rejected(kCompl, R"({"prompt": [[1], "a"]})", "prompt[1]");
  expect_rejected(kCompl, R"({"prompt": [[1, [2]]]})", "prompt[0][1]");
  expect_rejected(kCompl, R"({"prompt": [null]})", "prompt[0]");
}

TEST(OpenAiRequestTest, LogitBiasOutOfRangeAndBadKeys) {
  for (const char* v : {R"({"5": 101})", R"({"5": -100.5})", R"({"5": 1e39})", R"({"1000": 1})",
                        R"({"-1": 1})", R"({"abc": 1})", R"({"05": 1})", R"({"1e3": 1})",
                        R"({" 5": 1})", R"({"": 1})", R"({"5.0": 1})", R"({"99999999999": 1})",
                        R"({"5": "x"})", R"({"5": null})", R"({"5": [1]})"}) {
    SCOPED_TRACE(v);
    expect_rejected(kChat, chat_body(std::string("\"logit_bias\": ") + v), "logit_bias");
  }
  std::string many = "{";
  for (int i = 0; i < 301; ++i) many += (i ? ", \"" : "\"") + std::to_string(i) + "\": 1";
  many += "}";
  ApiError e = expect_rejected(kChat, chat_body("\"logit_bias\": " + many), "logit_bias");
  EXPECT_NE(e.message.find("301"), std::string::npos) << e.message;
}

TEST(OpenAiRequestTest, TooManyOrTooLongStopStrings) {
  std::string many = "[";
  for (int i = 0; i < 10000; ++i) many += (i ? ", \"s" : "\"s") + std::to_string(i) + "\"";
  many += "]";
  ApiError e = expect_rejected(kChat, chat_body("\"stop\": " + many), "stop");
  EXPECT_NE(e.message.find("10000"), std::string::npos) << e.message;
  expect_rejected(kChat, chat_body("\"stop\": \"" + std::string(1 << 20, 'x') + "\""), "stop");
  expect_rejected(kChat, chat_body("\"stop\": [\"" + std::string(257, 'x') + "\"]"), "stop");
  expect_rejected(kChat, chat_body(R"("stop": "")"), "stop");
  expect_rejected(kCompl, completions_body(R"("stop": ["a", ""])"), "stop");
  // 16 strings of 256 bytes are fine.
  std::string ok = "[";
  for (int i = 0; i < 16; ++i)
    ok += (i ? ", \"" : "\"") + std::string(255, 'a') + char('a' + i) + "\"";
  ok += "]";
  EXPECT_EQ(parse_ok(kChat, chat_body("\"stop\": " + ok)).stop.size(), 16u);
}

TEST(OpenAiRequestTest, InvalidUtf8) {
  // Raw bytes that are not UTF-8, in a value: the error names that value.
  for (const char* bad : {"\xFF", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xE2\x82"}) {
    SCOPED_TRACE(testing::PrintToString(std::string(bad)));
    ApiError e = expect_rejected(
        kChat, messages_body(std::string(R"([{"role": "user", "content": "x)") + bad + "\"}]"),
        "messages[0].content");
    EXPECT_NE(e.message.find("UTF-8"), std::string::npos) << e.message;
    expect_rejected(kChat, std::string(R"({"model": "m)") + bad + R"(", "messages": []})", "model");
    expect_rejected(kCompl, std::string(R"({"prompt": ["ok", "x)") + bad + "\"]}", "prompt[1]");
    expect_rejected(kChat, chat_body(std::string(R"("stop": ["a", ")") + bad + "\"]"), "stop[1]");
    // In a key: the containing object (here the top level) is all that can be named.
    expect_rejected(kChat, std::string("{\"") + bad + R"(": 1, "messages": []})", std::nullopt);
    expect_rejected(kChat, messages_body(std::string(R"([{"role": "user", ")") + bad + R"(": 1}])"),
                    "messages[0]");
  }
  // Lone surrogates as escapes.
  for (const char* esc : {R"(\ud800)", R"(\udc00)", R"(\ud800\u0041)"}) {
    SCOPED_TRACE(esc);
    expect_rejected(kChat,
                    messages_body(std::string(R"([{"role": "user", "content": "x)") + esc + "\"}]"),
                    "messages[0].content");
  }
  // NUL, escaped (a raw control byte is a JSON syntax error) or not.
  expect_rejected(kChat, messages_body(R"([{"role": "user", "content": "a\u0000b"}])"),
                  "messages[0].content");
  expect_rejected(kChat,
                  messages_body(std::string("[{\"role\": \"user\", \"content\": \"a") +
                                std::string(1, '\0') + "b\"}]"),
                  "messages[0].content");
  expect_rejected(kChat, chat_body(R"("x\u0000": 1)"), std::nullopt);
}

TEST(OpenAiRequestTest, EmptyOrMissingMessages) {
  expect_rejected(kChat, messages_body("[]"), "messages");
  expect_rejected(kChat, R"({"model": "m"})", "messages");
  expect_rejected(kChat, R"({"model": "m", "messages": null})", "messages");
  expect_rejected(kCompl, R"({"model": "m"})", "prompt");
  expect_rejected(kCompl, R"({"prompt": []})", "prompt");
  expect_rejected(kCompl, R"({"prompt": [[]]})", "prompt[0]");
  expect_rejected(kCompl, R"({"prompt": [[1], []]})", "prompt[1]");
}

TEST(OpenAiRequestTest, UnknownOrMissingRole) {
  ApiError e = expect_rejected(
      kChat,
      messages_body(R"([{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}])"),
      "messages[1].role");
  EXPECT_NE(e.message.find("'wizard'"), std::string::npos) << e.message;
  expect_rejected(kChat, messages_body(R"([{"role": "function", "content": "a", "name": "f"}])"),
                  "messages[0].role");
  expect_rejected(kChat, messages_body(R"([{"role": "User", "content": "a"}])"),
                  "messages[0].role");
  expect_rejected(kChat, messages_body(R"([{"content": "a"}])"), "messages[0].role");
  expect_rejected(kChat, messages_body(R"([{"role": 1, "content": "a"}])"), "messages[0].role");
  // A long role is quoted cut short, on a character boundary.
  std::string long_role;
  for (int i = 0; i < 100; ++i) long_role += "\xC3\xA9";  // é
  e = expect_rejected(kChat,
                      messages_body("[{\"role\": \"" + long_role + "\", \"content\": \"a\"}]"),
                      "messages[0].role");
  EXPECT_LT(e.message.size(), 250u);
}

TEST(OpenAiRequestTest, ContentOfTheWrongShape) {
  struct Case {
    std::string messages, param;
  };
  for (
      const Case& c : std::vector<Case>{
          {R"([{"role": "user", "content": 5}])", "messages[0].content"},
          {R"([{"role": "user", "content": {"type": "text"}}])", "messages[0].content"},
          {R"([{"role": "user", "content": []}])", "messages[0].content"},
          {R"([{"role": "user"}])", "messages[0].content"},
          {R"([{"role": "system", "content": null}])", "messages[0].content"},
          {R"([{"role": "user", "content": ["hi"]}])", "messages[0].content[0]"},
          {R"([{"role": "user", "content": [{"text": "hi"}]}])", "messages[0].content[0].type"},
          {R"([{"role": "user", "content": [{"type": 1, "text": "hi"}]}])",
           "messages[0].content[0].type"},
          {R"([{"role": "user", "content": [{"type": "text"}]}])", "messages[0].content[0].text"},
          {R"([{"role": "user", "content": [{"type": "text", "text": 5}]}])",
           "messages[0].content[0].text"},
          {R"([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "http://127.0.0.1/"}}]}])",
           "messages[0].content[1].type"},
          {R"([{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}])",
           "messages[0].content[0].type"},
          {R"([{"role": "user", "content": [{"type": "bogus"}]}])", "messages[0].content[0].type"},
          {R"([{"role": "user", "content": "a", "name": 5}])", "messages[0].name"},
          {R"([{"role": "user", "content": "a"}, {"role": "tool", "content": "r"}])",
           "messages[1].tool_call_id"},
          {R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function"}]}])",
           "messages[1].tool_calls"},
          {R"(["hi"])", "messages[0]"},
          {R"([null])", "messages[0]"}}) {
    SCOPED_TRACE(c.messages);
    expect_rejected(kChat, messages_body(c.messages), c.param);
  }
}

TEST(OpenAiRequestTest, DuplicateKeys) {
  ApiError e =
      expect_rejected(kChat, chat_body(R"("temperature": 0.5, "temperature": 1)"), "temperature");
  EXPECT_NE(e.message.find("duplicate"), std::string::npos) << e.message;
  expect_rejected(kChat, messages_body(R"([{"role": "user", "role": "system", "content": "a"}])"),
                  "messages[0].role");
  expect_rejected(kChat, chat_body(R"("logit_bias": {"5": 1, "5": 2})"), "logit_bias.5");
  expect_rejected(kChat, R"({"messages": [], "messages": [{"role": "user", "content": "a"}]})",
                  "messages");
}

TEST(OpenAiRequestTest, NestingDepth) {
  // The top-level object is level 1: 63 more arrays make 64, accepted (in an ignored key).
  parse_ok(kChat, chat_body("\"x\": " + nested_arrays(63)));
  ApiError e = expect_rejected(kChat, chat_body("\"x\": " + nested_arrays(64)), std::nullopt);
  EXPECT_NE(e.message.find("64"), std::string::npos) << e.message;
  // 1e5 deep, cut off at once.
  expect_rejected(kChat, nested_arrays(100000), std::nullopt);
  expect_rejected(kChat, std::string(100000, '['), std::nullopt);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  expect_rejected(kChat, objects, std::nullopt);
}

TEST(OpenAiRequestTest, LogprobsOutOfRangeOrInconsistent) {
  expect_rejected(kChat, chat_body(R"("logprobs": true, "top_logprobs": 21)"), "top_logprobs");
  expect_rejected(kChat, chat_body(R"("logprobs": true, "top_logprobs": 1000000)"), "top_logprobs");
  expect_rejected(kChat, chat_body(R"("logprobs": true, "top_logprobs": -1)"), "top_logprobs");
  expect_rejected(kChat, chat_body(R"("top_logprobs": 2)"), "top_logprobs");
  expect_rejected(kChat, chat_body(R"("logprobs": false, "top_logprobs": 2)"), "top_logprobs");
  expect_rejected(kCompl, completions_body(R"("logprobs": 21)"), "logprobs");
  expect_rejected(kCompl, completions_body(R"("logprobs": -1)"), "logprobs");
  expect_rejected(kCompl, completions_body(R"("logprobs": 1000000, "echo": true)"), "logprobs");
  RequestLimits wide = test_limits();
  wide.max_logprobs = 5;
  expect_rejected(kChat, chat_body(R"("logprobs": true, "top_logprobs": 6)"), "top_logprobs", wide);
}

TEST(OpenAiRequestTest, StreamOptionsNeedStream) {
  expect_rejected(kChat, chat_body(R"("stream_options": {"include_usage": true})"),
                  "stream_options");
  expect_rejected(kCompl,
                  completions_body(R"("stream": false, "stream_options": {"include_usage": true})"),
                  "stream_options");
}

TEST(OpenAiRequestTest, UnsupportedParametersAreRefusedNotIgnored) {
  struct Case {
    std::string extra, param;
  };
  for (const Case& c : std::vector<Case>{
           {R"("tools": [{"type": "function", "function": {"name": "f"}}])", "tools"},
           {R"("functions": [{"name": "f"}])", "functions"},
           {R"("tool_choice": "required")", "tool_choice"},
           {R"("tool_choice": {"type": "function", "function": {"name": "f"}})", "tool_choice"},
           {R"("response_format": {"type": "json_object"})", "response_format"},
           {R"("response_format": "text")", "response_format"},
           {R"("guided_json": {"type": "object"})", "guided_json"},
           {R"("guided_regex": "(a+)+$")", "guided_regex"},
           {R"("chat_template": "{{ 'x' * 1000000 }}")", "chat_template"}}) {
    SCOPED_TRACE(c.extra);
    expect_rejected(kChat, chat_body(c.extra), c.param);
  }
  expect_rejected(kCompl, completions_body(R"("suffix": "end")"), "suffix");
}

TEST(OpenAiRequestTest, TooManyPrompts) {
  std::string many = "[";
  for (int i = 0; i < 65; ++i) many += i ? ", \"p\"" : "\"p\"";
  many += "]";
  expect_rejected(kCompl, "{\"prompt\": " + many + "}", "prompt");
}

// ---- Good requests --------------------------------------------------------------------

TEST(OpenAiRequestTest, ChatWithEveryParameter) {
  ParsedRequest r = parse_ok(kChat, R"({
    "model": "gemma-3-270m",
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Hi \u00e9 \ud83d\ude00"}],
    "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
    "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
    "logit_bias": {"7": -100, "12": 2.5}, "seed": 42, "min_tokens": 2,
    "max_completion_tokens": 50, "n": 3, "stream": true,
    "stream_options": {"include_usage": true}, "stop": ["\n\n", "END"],
    "stop_token_ids": [1, 2], "user": "u-1", "ignore_eos": true, "skip_special_tokens": false,
    "chat_template_kwargs": {"enable_thinking": false, "other": [1, 2]},
    "logprobs": true, "top_logprobs": 5,
    "metadata": {"k": "v"}, "store": false, "parallel_tool_calls": true,
    "tool_choice": "none", "tools": [], "response_format": {"type": "text"}
  })");
  EXPECT_EQ(r.endpoint, kChat);
  EXPECT_EQ(r.model, "gemma-3-270m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "Be brief.");
  EXPECT_EQ(r.messages[1].role, "user");
  EXPECT_EQ(r.messages[1].content, "Hi \xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_TRUE(r.messages[1].parts.empty());
  EXPECT_TRUE(r.prompts.empty());
  const sampling::SamplingParams& s = r.sampling;
  EXPECT_FLOAT_EQ(s.temperature, 0.7f);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_FLOAT_EQ(s.min_p, 0.05f);
  EXPECT_FLOAT_EQ(s.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.1f);
  ASSERT_EQ(s.logit_bias.size(), 2u);
  // Keys come in the document's (sorted string) order.
  EXPECT_EQ(s.logit_bias[0], (std::pair<int32_t, float>{12, 2.5f}));
  EXPECT_EQ(s.logit_bias[1], (std::pair<int32_t, float>{7, -100.0f}));
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(s.min_tokens, 2);
  EXPECT_EQ(s.logprobs, 5);
  EXPECT_EQ(s.prompt_logprobs, -1);
  EXPECT_TRUE(s.stop_token_ids.empty());
  EXPECT_EQ(r.max_tokens, 50);
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_FALSE(r.echo);
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(r.stop_token_ids, (std::vector<TokenId>{1, 2}));
  EXPECT_EQ(r.user, "u-1");
  EXPECT_EQ(r.enable_thinking, false);
  EXPECT_FALSE(r.skip_special_tokens);

  engine::Request er = to_engine_request(r, {5, 6, 7});
  EXPECT_EQ(er.prompt, (std::vector<TokenId>{5, 6, 7}));
  EXPECT_EQ(er.max_tokens, 50);
  EXPECT_EQ(er.n, 3);
  EXPECT_TRUE(er.ignore_eos);
  EXPECT_EQ(er.stop_token_ids, (std::vector<TokenId>{1, 2}));
  EXPECT_FLOAT_EQ(er.sampling.temperature, 0.7f);
  EXPECT_EQ(er.sampling.top_k, 40);
  EXPECT_EQ(er.sampling.logit_bias, s.logit_bias);
  EXPECT_EQ(er.sampling.seed, 42u);
  EXPECT_EQ(er.sampling.logprobs, 5);
  EXPECT_EQ(er.sampling.min_tokens, 2);
  EXPECT_FALSE(er.debug_logits);
  EXPECT_TRUE(sampling::validate(er.sampling, 1000).is_ok());
}

TEST(OpenAiRequestTest, ChatDefaults) {
  ParsedRequest r = parse_ok(kChat, R"({"messages": [{"role": "user", "content": ""}]})");
  EXPECT_EQ(r.model, "");
  EXPECT_EQ(r.messages[0].content, "");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_TRUE(r.skip_special_tokens);
  EXPECT_FALSE(r.enable_thinking.has_value());
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.logprobs, -1);
  EXPECT_FALSE(r.sampling.seed.has_value());
  // null is "not given", for every optional parameter.
  ParsedRequest n = parse_ok(
      kChat, chat_body(
                 R"("temperature": null, "max_tokens": null, "n": null, "stop": null, "seed": null,
         "logit_bias": null, "stream": null, "stream_options": null, "logprobs": null,
         "top_logprobs": null, "user": null, "tools": null, "response_format": null,
         "chat_template": null, "chat_template_kwargs": null)"));
  EXPECT_FALSE(n.max_tokens.has_value());
  EXPECT_FLOAT_EQ(n.sampling.temperature, 1.0f);
  EXPECT_TRUE(n.stop.empty());
  EXPECT_EQ(n.sampling.logprobs, -1);
}

TEST(OpenAiRequestTest, ChatRolesAndPartLists) {
  ParsedRequest r = parse_ok(kChat, messages_body(R"([
    {"role": "system", "content": [{"type": "text", "text": "sys"}]},
    {"role": "developer", "content": "dev"},
    {"role": "user", "name": "ann", "content": [{"type": "text", "text": "a"},
                                                {"type": "text", "text": "b", "extra": 1}]},
    {"role": "assistant", "content": null},
    {"role": "assistant", "content": [{"type": "text", "text": "t"},
                                      {"type": "refusal", "refusal": "no"}], "tool_calls": []},
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    {"role": "user", "content": "go on"}])"));
  ASSERT_EQ(r.messages.size(), 7u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_FALSE(r.messages[0].content.has_value());
  ASSERT_EQ(r.messages[0].parts.size(), 1u);
  EXPECT_EQ(r.messages[0].parts[0].type, "text");
  EXPECT_EQ(r.messages[0].parts[0].text, "sys");
  EXPECT_EQ(r.messages[1].role, "developer");
  EXPECT_EQ(r.messages[1].content, "dev");
  ASSERT_EQ(r.messages[2].parts.size(), 2u);
  EXPECT_EQ(r.messages[2].parts[1].text, "b");
  EXPECT_EQ(r.messages[3].role, "assistant");
  EXPECT_FALSE(r.messages[3].content.has_value());
  EXPECT_TRUE(r.messages[3].parts.empty());
  ASSERT_EQ(r.messages[4].parts.size(), 2u);
  EXPECT_EQ(r.messages[4].parts[1].type, "text");
  EXPECT_EQ(r.messages[4].parts[1].text, "no");
  EXPECT_EQ(r.messages[5].role, "tool");
  EXPECT_EQ(r.messages[5].content, "42");
  EXPECT_EQ(r.messages[6].content, "go on");
}

TEST(OpenAiRequestTest, CompletionsPromptForms) {
  ParsedRequest s = parse_ok(kCompl, R"({"prompt": "Once upon"})");
  ASSERT_EQ(s.prompts.size(), 1u);
  EXPECT_EQ(s.prompts[0].text, "Once upon");
  EXPECT_TRUE(s.prompts[0].token_ids.empty());
  EXPECT_EQ(s.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_TRUE(s.messages.empty());

  ParsedRequest ss = parse_ok(kCompl, R"({"prompt": ["a", "", "c"]})");
  ASSERT_EQ(ss.prompts.size(), 3u);
  EXPECT_EQ(ss.prompts[1].text, "");
  EXPECT_EQ(ss.prompts[2].text, "c");

  ParsedRequest ids = parse_ok(kCompl, R"({"prompt": [0, 5, 999]})");
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_FALSE(ids.prompts[0].text.has_value());
  EXPECT_EQ(ids.prompts[0].token_ids, (std::vector<TokenId>{0, 5, 999}));

  ParsedRequest lists = parse_ok(kCompl, R"({"prompt": [[1, 2], [3]], "max_tokens": 4})");
  ASSERT_EQ(lists.prompts.size(), 2u);
  EXPECT_EQ(lists.prompts[0].token_ids, (std::vector<TokenId>{1, 2}));
  EXPECT_EQ(lists.prompts[1].token_ids, (std::vector<TokenId>{3}));
  EXPECT_EQ(lists.max_tokens, 4);

  // 64 prompts are allowed; an empty suffix and best_of == n are accepted.
  std::string many = "[";
  for (int i = 0; i < 64; ++i) many += i ? ", [1]" : "[1]";
  many += "]";
  EXPECT_EQ(
      parse_ok(kCompl, "{\"prompt\": " + many + ", \"suffix\": \"\", \"n\": 2, \"best_of\": 2}")
          .prompts.size(),
      64u);

  engine::Request er = to_engine_request(lists, lists.prompts[1].token_ids);
  EXPECT_EQ(er.prompt, (std::vector<TokenId>{3}));
  EXPECT_EQ(er.max_tokens, 4);
}

TEST(OpenAiRequestTest, StreamWithUsage) {
  ParsedRequest r = parse_ok(
      kCompl,
      completions_body(
          R"("stream": true, "stream_options": {"include_usage": true, "continuous_usage_stats": false})"));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  ParsedRequest off = parse_ok(kChat, chat_body(R"("stream": true, "stream_options": {})"));
  EXPECT_TRUE(off.stream);
  EXPECT_FALSE(off.include_usage);
}

TEST(OpenAiRequestTest, LogprobsForms) {
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("logprobs": true)")).sampling.logprobs, 0);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("logprobs": false)")).sampling.logprobs, -1);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("logprobs": true, "top_logprobs": 0)")).sampling.logprobs,
            0);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("logprobs": true, "top_logprobs": 20)")).sampling.logprobs,
            20);

  ParsedRequest c = parse_ok(kCompl, completions_body(R"("logprobs": 3)"));
  EXPECT_EQ(c.sampling.logprobs, 3);
  EXPECT_EQ(c.sampling.prompt_logprobs, -1);
  ParsedRequest echo = parse_ok(kCompl, completions_body(R"("logprobs": 3, "echo": true)"));
  EXPECT_TRUE(echo.echo);
  EXPECT_EQ(echo.sampling.logprobs, 3);
  EXPECT_EQ(echo.sampling.prompt_logprobs, 3);
  EXPECT_EQ(to_engine_request(echo, {1}).sampling.prompt_logprobs, 3);
  ParsedRequest zero = parse_ok(kCompl, completions_body(R"("logprobs": 0, "echo": true)"));
  EXPECT_EQ(zero.sampling.logprobs, 0);
  EXPECT_EQ(zero.sampling.prompt_logprobs, 0);
  ParsedRequest echo_only = parse_ok(kCompl, completions_body(R"("echo": true)"));
  EXPECT_TRUE(echo_only.echo);
  EXPECT_EQ(echo_only.sampling.prompt_logprobs, -1);
}

TEST(OpenAiRequestTest, IntegerEdges) {
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("seed": -1)")).sampling.seed,
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("seed": 9223372036854775807)")).sampling.seed,
            uint64_t{9223372036854775807u});
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("seed": -9223372036854775808)")).sampling.seed,
            uint64_t{1} << 63);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("max_tokens": 2147483647)")).max_tokens, 2147483647);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("max_tokens": 7, "max_completion_tokens": 7)")).max_tokens,
            7);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("n": 16)")).n, 16);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("top_k": -1)")).sampling.top_k, -1);
  EXPECT_FLOAT_EQ(parse_ok(kChat, chat_body(R"("temperature": 0)")).sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(parse_ok(kChat, chat_body(R"("temperature": 2)")).sampling.temperature, 2.0f);
  EXPECT_FLOAT_EQ(parse_ok(kChat, chat_body(R"("top_p": 1e-30)")).sampling.top_p, 1e-30f);
  EXPECT_EQ(parse_ok(kChat, chat_body(R"("logit_bias": {"0": 100, "999": -100})"))
                .sampling.logit_bias.size(),
            2u);
}

// ---- The context check ----------------------------------------------------------------

TEST(OpenAiRequestTest, ContextLengthExceededInOpenAisWords) {
  RequestLimits limits = test_limits();  // max_model_len 128
  ParsedRequest r = parse_ok(kChat, chat_body(R"("max_tokens": 100)"));
  EXPECT_FALSE(check_context(r, 28, limits).has_value());  // exactly 128
  std::optional<ApiError> e = check_context(r, 29, limits);
  ASSERT_TRUE(e.has_value());
  expect_well_formed(*e);
  EXPECT_EQ(e->code, "context_length_exceeded");
  EXPECT_EQ(e->param, "messages");
  EXPECT_EQ(e->message,
            "This model's maximum context length is 128 tokens. However, you requested 129 "
            "tokens (29 in the messages, 100 in the completion). Please reduce the length of "
            "the messages or completion.");
  EXPECT_EQ(r.max_tokens, 100);

  ParsedRequest c = parse_ok(kCompl, completions_body(R"("max_tokens": 2147483647)"));
  e = check_context(c, 5, limits);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "context_length_exceeded");
  EXPECT_EQ(e->param, "prompt");
  EXPECT_NE(e->message.find("you requested 2147483652 tokens (5 in the prompt, 2147483647 in the "
                            "completion)"),
            std::string::npos)
      << e->message;
  // The default 16 counts too.
  ParsedRequest d = parse_ok(kCompl, completions_body());
  EXPECT_FALSE(check_context(d, 112, limits).has_value());
  EXPECT_TRUE(check_context(d, 113, limits).has_value());
}

TEST(OpenAiRequestTest, UnsetMaxTokensFillsTheContextLeft) {
  RequestLimits limits = test_limits();
  ParsedRequest r = parse_ok(kChat, chat_body());
  EXPECT_FALSE(check_context(r, 100, limits).has_value());
  EXPECT_EQ(r.max_tokens, 28);
  EXPECT_EQ(to_engine_request(r, {1, 2}).max_tokens, 28);

  ParsedRequest one = parse_ok(kChat, chat_body());
  EXPECT_FALSE(check_context(one, 127, limits).has_value());
  EXPECT_EQ(one.max_tokens, 1);

  ParsedRequest full = parse_ok(kChat, chat_body());
  std::optional<ApiError> e = check_context(full, 128, limits);
  ASSERT_TRUE(e.has_value());
  expect_well_formed(*e);
  EXPECT_EQ(e->code, "context_length_exceeded");
  EXPECT_EQ(e->param, "messages");
  EXPECT_EQ(e->message,
            "This model's maximum context length is 128 tokens. However, your messages resulted "
            "in 128 tokens. Please reduce the length of the messages.");
  EXPECT_FALSE(full.max_tokens.has_value());

  ParsedRequest empty = parse_ok(kChat, chat_body());
  e = check_context(empty, 0, limits);
  ASSERT_TRUE(e.has_value());
  expect_well_formed(*e);
  EXPECT_EQ(e->param, "messages");
  EXPECT_FALSE(e->code.has_value());
}

// ---- Robustness -----------------------------------------------------------------------

// Random byte edits of good bodies: never a crash, and every answer is either a request
// that passes sampling::validate or a well-formed 400.
TEST(OpenAiRequestTest, RandomMutationsGiveWellFormedAnswers) {
  const std::vector<std::pair<Endpoint, std::string>> seeds = {
      {kChat,
       R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "h\u00e9"}]}], "temperature": 0.5, "logit_bias": {"5": 1}, "stop": ["x"], "n": 2, "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 3})"},
      {kCompl,
       R"({"prompt": [[1, 2], [3]], "max_tokens": 5, "logprobs": 2, "echo": true, "seed": -7, "stop_token_ids": [4]})"},
  };
  const char kAlphabet[] = "{}[]\",:0123456789-+.eE \\u\x80\xff\xc3\xa9nulltruefalse";
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    const auto& [endpoint, seed] = seeds[iter % seeds.size()];
    std::string body = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      size_t pos = rng() % (body.size() + 1);
      char c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
      switch (rng() % 3) {
        case 0:
          if (pos < body.size()) body[pos] = c;
          break;
        case 1:
          body.insert(body.begin() + pos, c);
          break;
        default:
          if (pos < body.size()) body.erase(pos, 1);
          break;
      }
    }
    auto r = parse_request(endpoint, body, test_limits());
    if (const ApiError* e = std::get_if<ApiError>(&r)) {
      expect_well_formed(*e);
    } else {
      ++accepted;
      const ParsedRequest& p = std::get<ParsedRequest>(r);
      EXPECT_TRUE(sampling::validate(p.sampling, 1000).is_ok());
      for (const std::string& s : p.stop) EXPECT_TRUE(is_valid_utf8(s));
    }
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace sluice::frontend
