// The built-in Gemma 3 chat format against Python jinja2's rendering of the Gemma 3 template
// (tools/make_gemma3_chat_reference.py): byte-identical output, the same errors.
#include "engine/chat/gemma3_chat.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace sluice::chat {
namespace {

using nlohmann::json;

std::vector<ChatMessage> to_messages(const json& j) {
  std::vector<ChatMessage> out;
  for (const json& m : j) {
    ChatMessage msg;
    msg.role = m.at("role").get<std::string>();
    const json& c = m.at("content");
    if (c.is_string()) {
      msg.content = c.get<std::string>();
    } else {
      for (const json& p : c) msg.parts.push_back({p.at("type").get<std::string>(), p.value("text", "")});
    }
    out.push_back(std::move(msg));
  }
  return out;
}

TEST(Gemma3Chat, MatchesJinjaReference) {
  std::istringstream in(testing::read_file(testing::fixture_path("chat/gemma3_chat.jsonl")));
  std::string line;
  int cases = 0, errors = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json c = json::parse(line);
    auto msgs = to_messages(c.at("messages"));
    auto got = render_gemma3_chat(msgs, c.at("add_generation_prompt").get<bool>());
    if (c.value("error", false)) {
      ASSERT_FALSE(got.is_ok()) << c.at("name");
      EXPECT_EQ(got.status().message(), c.at("error_message").get<std::string>());
      ++errors;
    } else {
      ASSERT_TRUE(got.is_ok()) << c.at("name") << ": " << got.status().to_string();
      EXPECT_EQ(*got, c.at("rendered").get<std::string>()) << c.at("name");
    }
    ++cases;
  }
  EXPECT_GE(cases - errors, 40);
  EXPECT_GE(errors, 2);
}

TEST(PythonStrip, UnicodeWhitespace) {
  EXPECT_EQ(python_strip("  \t\nhi there \r\n"), "hi there");
  EXPECT_EQ(python_strip("\xe3\x80\x80x\xc2\xa0"), "x");           // U+3000, U+00A0
  EXPECT_EQ(python_strip("\xe2\x80\x8bx"), "\xe2\x80\x8bx");        // U+200B is not whitespace
  EXPECT_EQ(python_strip("\x1c\x1fx\x1e"), "x");                   // file/group/record separators
  EXPECT_EQ(python_strip("\xc2\x85x\xe2\x80\xa8"), "x");            // U+0085, U+2028
  EXPECT_EQ(python_strip("   "), "");
  EXPECT_EQ(python_strip("\xff "), "\xff");                         // invalid byte kept
}

}  // namespace
}  // namespace sluice::chat
