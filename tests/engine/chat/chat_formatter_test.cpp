// ChatFormatter: the model's own template when it has one (rendered as transformers would,
// checked against the Python jinja2 reference renderings), the built-in Gemma 3 format when
// it has none.
#include "engine/chat/chat_formatter.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/chat/gemma3_chat.h"
#include "test_util.h"

namespace sluice::chat {
namespace {

using nlohmann::ordered_json;

TEST(ChatFormatter, WithoutTemplateUsesTheBuiltInGemma3Format) {
  auto f = ChatFormatter::create(std::nullopt);
  ASSERT_TRUE(f.is_ok());
  EXPECT_FALSE(f->uses_model_template());
  std::vector<ChatMessage> msgs = {{"system", "Be brief.", {}}, {"user", "Hi", {}}};
  auto got = f->render(msgs, {});
  auto want = render_gemma3_chat(msgs, true);
  ASSERT_TRUE(got.is_ok() && want.is_ok());
  EXPECT_EQ(*got, *want);
}

// Every reference conversation of plain string messages (no tools, no thinking switch)
// renders byte for byte as Python's jinja2 rendered it.
TEST(ChatFormatter, ModelTemplateMatchesReferenceRenderings) {
  std::ifstream in(sluice::testing::fixture_path("chat/gemma4_reference.jsonl"));
  ASSERT_TRUE(in.good());
  std::map<std::string, ChatFormatter> formatters;
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    ordered_json row = ordered_json::parse(line);
    const ordered_json& ctx = row["context"];
    bool plain = !ctx["tools"].is_array() && !ctx["documents"].is_array() && !ctx.contains("enable_thinking");
    for (const auto& [key, value] : ctx.items()) {
      plain = plain && (key == "messages" || key == "tools" || key == "documents" ||
                        key == "add_generation_prompt" || key == "bos_token" || key == "eos_token" ||
                        key == "pad_token" || key == "unk_token");
    }
    std::vector<ChatMessage> msgs;
    for (const ordered_json& m : ctx["messages"]) {
      plain = plain && m.size() == 2 && m.contains("role") && m.contains("content") && m["content"].is_string();
      if (plain) msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>(), {}});
    }
    if (!plain) continue;
    const std::string name = row["template"].get<std::string>();
    if (!formatters.contains(name)) {
      auto f = ChatFormatter::create(
          sluice::testing::read_file(sluice::testing::shared_data_path("chat-templates/" + name)));
      ASSERT_TRUE(f.is_ok()) << f.status().to_string();
      formatters.emplace(name, std::move(*f));
    }
    ChatRenderOptions opt;
    opt.add_generation_prompt = ctx["add_generation_prompt"].get<bool>();
    auto got = formatters.at(name).render(msgs, opt);
    if (row.contains("error")) {  // jinja2 refused it too
      EXPECT_FALSE(got.is_ok()) << name << " / " << row["name"];
      ++checked;
      continue;
    }
    ASSERT_TRUE(got.is_ok()) << row["name"] << ": " << got.status().to_string();
    EXPECT_EQ(*got, row["rendered"].get<std::string>()) << name << " / " << row["name"];
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(ChatFormatter, BrokenTemplateIsAnErrorNamingTheLine) {
  auto f = ChatFormatter::create(std::string("{% for m in messages %}{{ m.content }"));
  ASSERT_FALSE(f.is_ok());
  EXPECT_NE(f.status().message().find("line"), std::string::npos) << f.status().to_string();
}

TEST(ChatFormatter, TemplateRaiseExceptionComesBackAsInvalidArgument) {
  auto f = ChatFormatter::create(std::string("{{ raise_exception('roles must alternate') }}"));
  ASSERT_TRUE(f.is_ok());
  std::vector<ChatMessage> msgs = {{"user", "Hi", {}}};
  auto got = f->render(msgs, {});
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got.status().message(), "roles must alternate");
}

}  // namespace
}  // namespace sluice::chat
