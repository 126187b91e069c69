// sluice-bench's wire format: SSE framing split at every byte, what a chunk counts as
// (sluice's token_ids, chat role-only deltas, usage, errors), and the request bodies.

#include "sluice_bench/openai_wire.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sluice::bench {
namespace {

using json = nlohmann::json;

TEST(SseParser, EventsSurviveAnySplit) {
  const std::string stream =
      ": a comment\r\n"
      "data: {\"a\":1}\r\n\r\n"
      "event: message\n"
      "data: line one\n"
      "data:line two\n\n"
      "id: 7\n\n"  // no data: no event
      "data: [DONE]\n\n";
  const std::vector<std::string> want = {"{\"a\":1}", "line one\nline two", "[DONE]"};
  for (size_t step = 1; step <= stream.size(); ++step) {
    SseParser p;
    std::vector<std::string> got;
    for (size_t i = 0; i < stream.size(); i += step)
      p.feed(std::string_view(stream).substr(i, step), &got);
    EXPECT_EQ(got, want) << "step " << step;
    EXPECT_FALSE(p.finish().has_value());
  }
}

TEST(SseParser, CarriageReturnLineEndsAndAFinalEventWithoutBlankLine) {
  SseParser p;
  std::vector<std::string> got;
  p.feed("data: x\r\rdata: y", &got);
  EXPECT_EQ(got, std::vector<std::string>{"x"});
  EXPECT_EQ(p.finish(), std::optional<std::string>("y"));
}

TEST(StreamChunk, SluiceCompletionWithTokenIds) {
  const StreamChunk c = parse_stream_chunk(
      R"({"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"","token_ids":[5,9],"finish_reason":null}],"usage":null})");
  EXPECT_TRUE(c.has_content);
  EXPECT_EQ(c.num_token_ids, 2);
  EXPECT_FALSE(c.has_usage);
  EXPECT_FALSE(c.error.has_value());
}

TEST(StreamChunk, TextAndChatDeltas) {
  EXPECT_TRUE(parse_stream_chunk(R"({"choices":[{"index":0,"text":" Paris"}]})").has_content);
  EXPECT_FALSE(parse_stream_chunk(R"({"choices":[{"index":0,"text":"","finish_reason":"length"}]})")
                   .has_content);
  EXPECT_TRUE(parse_stream_chunk(R"({"choices":[{"delta":{"role":"assistant","content":"Hi"}}]})")
                  .has_content);
  EXPECT_FALSE(parse_stream_chunk(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})")
                   .has_content);
  EXPECT_FALSE(parse_stream_chunk(R"({"choices":[{"delta":{"role":"assistant"}}]})").has_content);
  EXPECT_TRUE(
      parse_stream_chunk(R"({"choices":[{"delta":{"reasoning_content":"hmm"}}]})").has_content);
  EXPECT_EQ(parse_stream_chunk(R"({"choices":[{"delta":{"content":"x"}}]})").num_token_ids, 0);
}

TEST(StreamChunk, UsageDoneErrorsAndGarbage) {
  const StreamChunk u = parse_stream_chunk(
      R"({"choices":[],"usage":{"completion_tokens":8,"prompt_tokens":16,"prompt_tokens_details":{"cached_tokens":12},"total_tokens":24}})");
  EXPECT_FALSE(u.has_content);
  EXPECT_TRUE(u.has_usage);
  EXPECT_EQ(u.prompt_tokens, 16);
  EXPECT_EQ(u.completion_tokens, 8);
  EXPECT_EQ(u.cached_tokens, 12);
  const StreamChunk no_details =
      parse_stream_chunk(R"({"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":4}})");
  EXPECT_TRUE(no_details.has_usage);
  EXPECT_EQ(no_details.cached_tokens, 0);
  EXPECT_TRUE(parse_stream_chunk("[DONE]").done);
  const StreamChunk e = parse_stream_chunk(
      R"({"error":{"message":"The engine aborted the request","type":"server_error"}})");
  ASSERT_TRUE(e.error.has_value());
  EXPECT_EQ(*e.error, "The engine aborted the request");
  EXPECT_TRUE(parse_stream_chunk("{not json").malformed);
}

TEST(ErrorMessage, OpenAiAndOtherShapes) {
  EXPECT_EQ(error_message(
                400, R"({"error":{"message":"bad temperature","type":"invalid_request_error"}})"),
            "HTTP 400: bad temperature");
  EXPECT_EQ(error_message(422, R"({"detail":"missing field"})"), "HTTP 422: missing field");
  EXPECT_EQ(error_message(502, "Bad Gateway"), "HTTP 502: Bad Gateway");
}

TEST(RequestBody, CompletionsWithTokenIds) {
  BenchPrompt p;
  p.prompt_ids = {2, 17, 300};
  p.output_len = 8;
  RequestShape shape;
  shape.model = "gemma3_tiny";
  const json j = json::parse(build_request_body(p, shape));
  EXPECT_EQ(j["model"], "gemma3_tiny");
  EXPECT_EQ(j["prompt"], json::array({2, 17, 300}));
  EXPECT_EQ(j["max_tokens"], 8);
  EXPECT_EQ(j["stream"], true);
  EXPECT_EQ(j["stream_options"]["include_usage"], true);
  EXPECT_EQ(j["ignore_eos"], true);
  EXPECT_FALSE(j.contains("logit_bias"));
  EXPECT_FALSE(j.contains("temperature"));
}

TEST(RequestBody, ChatWithSystemPrefixAndEosBan) {
  BenchPrompt p;
  p.prefix_text = "shared words";
  p.prompt_text = "the user turn";
  p.output_len = 4;
  RequestShape shape;
  shape.endpoint = ApiEndpoint::kChat;
  shape.ignore_eos = false;
  shape.banned_eos_ids = {1, 106};
  const json j = json::parse(build_request_body(p, shape));
  EXPECT_FALSE(j.contains("model"));
  ASSERT_EQ(j["messages"].size(), 2u);
  EXPECT_EQ(j["messages"][0]["role"], "system");
  EXPECT_EQ(j["messages"][0]["content"], "shared words");
  EXPECT_EQ(j["messages"][1]["role"], "user");
  EXPECT_EQ(j["messages"][1]["content"], "the user turn");
  EXPECT_FALSE(j.contains("ignore_eos"));
  EXPECT_EQ(j["logit_bias"]["1"], -100);
  EXPECT_EQ(j["logit_bias"]["106"], -100);
  // A text completion joins the prefix and the prompt.
  shape.endpoint = ApiEndpoint::kCompletions;
  EXPECT_EQ(json::parse(build_request_body(p, shape))["prompt"], "shared words the user turn");
}

}  // namespace
}  // namespace sluice::bench
