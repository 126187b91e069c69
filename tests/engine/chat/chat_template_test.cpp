// The public ChatTemplate API against references rendered by transformers: the Gemma 4
// templates (tests/fixtures/chat/gemma4_reference.jsonl, from
// tools/make_chat_template_reference.py) and the Gemma 3 template (gemma3_chat.jsonl, from
// tools/make_gemma3_chat_reference.py). Templates are read where they live, never copied.

#include "engine/chat/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "jinja_test_util.h"
#include "test_util.h"

namespace sluice::chat {
namespace {

using nlohmann::ordered_json;

std::vector<ordered_json> read_jsonl(const std::string& path) {
  std::vector<ordered_json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(ordered_json::parse(line));
  }
  return rows;
}

const ChatTemplate& gemma4_template(const std::string& name) {
  static std::map<std::string, ChatTemplate> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    std::string source =
        sluice::testing::read_file(sluice::testing::shared_data_path("chat-templates/" + name));
    if (source.empty()) throw std::runtime_error("missing template " + name);
    StatusOr<ChatTemplate> t = ChatTemplate::compile(source);
    if (!t.is_ok()) throw std::runtime_error(t.status().to_string());
    it = cache.emplace(name, std::move(*t)).first;
  }
  return it->second;
}

std::vector<ordered_json> gemma4_rows() {
  return read_jsonl(sluice::testing::fixture_path("chat/gemma4_reference.jsonl"));
}

TEST(ChatTemplate, Gemma4MatchesTransformersByteForByte) {
  std::vector<ordered_json> rows = gemma4_rows();
  ASSERT_GE(rows.size(), 100u);
  std::map<std::string, std::set<std::string>> conversations;
  int num_rendered = 0, num_errors = 0;
  for (const ordered_json& row : rows) {
    std::string tmpl = row["template"];
    SCOPED_TRACE(tmpl + " / " + std::string(row["name"]) + " / add_generation_prompt=" +
                 row["context"]["add_generation_prompt"].dump() + " / enable_thinking=" +
                 row["context"].value("enable_thinking", ordered_json()).dump());
    conversations[tmpl].insert(row["name"]);
    const ChatTemplate& t = gemma4_template(tmpl);
    StatusOr<std::string> out = t.render(row["context"]);
    // nlohmann::json sorts keys; these templates sort every mapping they walk, so the
    // rendering must not change.
    StatusOr<std::string> sorted = t.render(nlohmann::json(row["context"]));
    if (row.contains("error")) {
      ASSERT_FALSE(out.is_ok()) << "expected: " << row["error"];
      EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
      EXPECT_FALSE(sorted.is_ok());
      ++num_errors;
      continue;
    }
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(*out, row["rendered"].get<std::string>());
    ASSERT_TRUE(sorted.is_ok()) << sorted.status().to_string();
    if (row["name"] != "system_parts_list") {  // that one prints a dict, keys in order
      EXPECT_EQ(*sorted, *out);
    }
    ++num_rendered;
  }
  ASSERT_EQ(conversations.size(), 2u);
  for (const auto& [tmpl, names] : conversations) EXPECT_GE(names.size(), 25u) << tmpl;
  EXPECT_GE(num_rendered, 100);
  EXPECT_GE(num_errors, 4);
}

TEST(ChatTemplate, Gemma4ErrorsNameTheCause) {
  for (const ordered_json& row : gemma4_rows()) {
    if (!row.contains("error") || row["template"] != "gemma4.jinja") continue;
    StatusOr<std::string> out = gemma4_template("gemma4.jinja").render(row["context"]);
    ASSERT_FALSE(out.is_ok());
    const std::string& msg = out.status().message();
    EXPECT_EQ(msg.rfind("chat template render failed, line ", 0), 0u) << msg;
    if (row["name"] == "error_no_messages") {
      EXPECT_NE(msg.find("list object has no element 0"), std::string::npos) << msg;
    } else if (row["name"] == "error_tool_call_without_name") {
      EXPECT_NE(msg.find("line 193: 'dict object' has no attribute 'name'"), std::string::npos)
          << msg;
    }
  }
}

TEST(ChatTemplate, Gemma3TemplateMatchesTransformers) {
  std::string source = sluice::testing::read_file(sluice::testing::source_dir() +
                                                  "/tools/gemma3_chat_template.jinja");
  std::vector<ordered_json> rows =
      read_jsonl(sluice::testing::fixture_path("chat/gemma3_chat.jsonl"));
  if (source.empty() || rows.empty()) GTEST_SKIP() << "Gemma 3 template or fixture not present";
  StatusOr<ChatTemplate> t = ChatTemplate::compile(source);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  for (const ordered_json& row : rows) {
    SCOPED_TRACE(row["name"].get<std::string>());
    ordered_json context = {{"messages", row["messages"]},
                            {"add_generation_prompt", row["add_generation_prompt"]},
                            {"bos_token", "<bos>"},
                            {"eos_token", "<eos>"}};
    StatusOr<std::string> out = t->render(context);
    if (row.value("error", false)) {
      ASSERT_FALSE(out.is_ok());
      EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(out.status().message(), row["error_message"].get<std::string>());
    } else {
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      EXPECT_EQ(*out, row["rendered"].get<std::string>());
    }
  }
}

// The constructs of the official Gemma 3 template (gemma-models.md section 1.5), in a
// template written for this test: string `+`, slicing, `!=` on tests of `loop.index0 % 2`,
// inline if inside a concatenation, `is string` / `is iterable`, `trim`, raise_exception.
TEST(ChatTemplate, Gemma3OfficialStyleConstructs) {
  constexpr std::string_view kTemplate = R"({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set prefix = (messages[0]['content'] if messages[0]['content'] is string else messages[0]['content'][0]['text']) + '\n\n' -%}
    {%- set rest = messages[1:] -%}
{%- else -%}
    {%- set prefix = "" -%}
    {%- set rest = messages -%}
{%- endif -%}
{%- for message in rest -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' + (prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}
)";
  StatusOr<ChatTemplate> t = ChatTemplate::compile(kTemplate);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  // Expected texts rendered by transformers' jinja2 environment.
  ordered_json ok = ordered_json::parse(R"({"bos_token": "<bos>", "add_generation_prompt": true,
      "messages": [{"role": "system", "content": [{"type": "text", "text": "SYS"}]},
                   {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Hi "}]},
                   {"role": "assistant", "content": " yo "}]})");
  EXPECT_EQ(*t->render(ok),
            "<bos><start_of_turn>user\nSYS\n\n<start_of_image>Hi<end_of_turn>\n"
            "<start_of_turn>model\nyo<end_of_turn>\n<start_of_turn>model\n");
  ordered_json two_users = ordered_json::parse(R"({"bos_token": "<bos>",
      "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})");
  EXPECT_EQ(t->render(two_users).status().message(),
            "Conversation roles must alternate user/assistant/user/assistant/...");
  ordered_json bad_content = ordered_json::parse(R"({"bos_token": "<bos>",
      "messages": [{"role": "user", "content": 5}]})");
  EXPECT_EQ(t->render(bad_content).status().message(), "Invalid content type");
}

TEST(ChatTemplate, RendersConcurrentlyFromOneCompiledTemplate) {
  std::vector<ordered_json> rows;
  for (ordered_json& row : gemma4_rows()) {
    if (row["template"] == "gemma4.jinja" && row.contains("rendered")) rows.push_back(row);
  }
  ASSERT_FALSE(rows.empty());
  const ChatTemplate& t = gemma4_template("gemma4.jinja");
  constexpr int kThreads = 6;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep) {
        for (size_t i = k; i < rows.size() + k; ++i) {
          const ordered_json& row = rows[i % rows.size()];
          StatusOr<std::string> out = t.render(row["context"]);
          if (!out.is_ok() || *out != row["rendered"].get<std::string>()) ++mismatches[k];
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int k = 0; k < kThreads; ++k) EXPECT_EQ(mismatches[k], 0) << "thread " << k;
}

TEST(ChatTemplate, CompileErrorsCarryLineAndColumn) {
  StatusOr<ChatTemplate> t = ChatTemplate::compile("Hello\n{% for m in messages %}\n{{ m | }}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.status().message(),
            "chat template syntax error, line 3, column 8: expected a name, got end of print "
            "statement ('}}')");
}

TEST(ChatTemplate, RaiseExceptionKeepsTheMessage) {
  StatusOr<ChatTemplate> t = ChatTemplate::compile(
      "{% if messages[0]['role'] != 'user' %}{{ raise_exception('First message must be from "
      "the user, got ' ~ messages[0]['role']) }}{% endif %}ok");
  ASSERT_TRUE(t.is_ok());
  nlohmann::json bad = {{"messages", {{{"role", "assistant"}, {"content", "x"}}}}};
  StatusOr<std::string> out = t->render(bad);
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "First message must be from the user, got assistant");
  nlohmann::json good = {{"messages", {{{"role", "user"}, {"content", "x"}}}}};
  EXPECT_EQ(*t->render(good), "ok");
}

TEST(ChatTemplate, ContextIsCheckedAndConverted) {
  StatusOr<ChatTemplate> t = ChatTemplate::compile("{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}");
  ASSERT_TRUE(t.is_ok());
  nlohmann::json ctx = {{"a", 18446744073709551615ull},
                        {"b", -3},
                        {"c", 2.0},
                        {"d", nullptr},
                        {"e", {{"k", {1, "two", false}}}}};
  EXPECT_EQ(*t->render(ctx), "1.8446744073709552e+19|-3|2.0|None|{'k': [1, 'two', False]}");
  StatusOr<std::string> not_object = t->render(nlohmann::json::array({1, 2}));
  ASSERT_FALSE(not_object.is_ok());
  EXPECT_NE(not_object.status().message().find("must be a JSON object"), std::string::npos);

  nlohmann::json deep = 1;
  for (int i = 0; i < 300; ++i) deep = nlohmann::json::array({deep});
  StatusOr<std::string> too_deep = t->render(nlohmann::json{{"a", deep}});
  ASSERT_FALSE(too_deep.is_ok());
  EXPECT_NE(too_deep.status().message().find("nests deeper than 128"), std::string::npos);
}

TEST(ChatTemplate, OrderedJsonKeepsTheCallersKeyOrder) {
  StatusOr<ChatTemplate> t =
      ChatTemplate::compile("{% for k in d %}{{ k }}{% endfor %} {{ d|tojson }}");
  ASSERT_TRUE(t.is_ok());
  ordered_json ordered = ordered_json::parse(R"({"d": {"z": 1, "a": 2}})");
  EXPECT_EQ(*t->render(ordered), R"(za {"z": 1, "a": 2})");
  EXPECT_EQ(*t->render(nlohmann::json(ordered)), R"(az {"a": 2, "z": 1})");
}

TEST(ChatTemplate, LimitsAreConfigurable) {
  TemplateLimits small;
  small.max_output_bytes = 10;
  StatusOr<ChatTemplate> t = ChatTemplate::compile("{{ s }}{{ s }}{{ s }}", small);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->limits().max_output_bytes, 10);
  StatusOr<std::string> out = t->render(nlohmann::json{{"s", "abcd"}});
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("max_output_bytes (10)"), std::string::npos)
      << out.status().message();
  EXPECT_EQ(*t->render(nlohmann::json{{"s", "abc"}}), "abcabcabc");
}

}  // namespace
}  // namespace sluice::chat
