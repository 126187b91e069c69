#include "sluice_bench/openai_wire.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace sluice::bench {

using json = nlohmann::json;

std::string build_request_body(const BenchPrompt& p, const RequestShape& shape) {
  json body;
  if (!shape.model.empty()) body["model"] = shape.model;
  if (shape.endpoint == ApiEndpoint::kChat) {
    json messages = json::array();
    if (!p.prefix_text.empty())
      messages.push_back({{"role", "system"}, {"content", p.prefix_text}});
    messages.push_back({{"role", "user"}, {"content", p.prompt_text}});
    body["messages"] = std::move(messages);
  } else if (!p.prompt_ids.empty()) {
    body["prompt"] = p.prompt_ids;
  } else {
    body["prompt"] = p.prefix_text.empty() ? p.prompt_text : p.prefix_text + " " + p.prompt_text;
  }
  body["max_tokens"] = p.output_len;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  if (shape.ignore_eos) {
    body["ignore_eos"] = true;
  } else if (!shape.banned_eos_ids.empty()) {
    json bias = json::object();
    for (int32_t id : shape.banned_eos_ids) bias[std::to_string(id)] = -100;
    body["logit_bias"] = std::move(bias);
  }
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SseParser::end_line(std::vector<std::string>* events) {
  if (line_.empty()) {  // a blank line ends the event
    if (has_data_) events->push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line_.front() != ':') {
    const size_t colon = line_.find(':');
    const std::string_view field = std::string_view(line_).substr(0, colon);
    if (field == "data") {
      std::string_view value;
      if (colon != std::string::npos) {
        value = std::string_view(line_).substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      }
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    }
  }
  line_.clear();
}

void SseParser::feed(std::string_view bytes, std::vector<std::string>* events) {
  for (char c : bytes) {
    if (c == '\n' && last_was_cr_) {  // the \n of a \r\n: the line already ended
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = c == '\r';
    if (c == '\n' || c == '\r') {
      end_line(events);
    } else {
      line_ += c;
    }
  }
}

std::optional<std::string> SseParser::finish() {
  std::vector<std::string> events;
  if (!line_.empty()) end_line(&events);
  end_line(&events);  // the missing blank line
  if (events.empty()) return std::nullopt;
  return std::move(events.front());
}

namespace {

int64_t int_or_zero(const json& j, std::string_view key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

bool non_empty_string(const json& j, std::string_view key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
}

}  // namespace

StreamChunk parse_stream_chunk(std::string_view data) {
  StreamChunk c;
  if (data == "[DONE]") {
    c.done = true;
    return c;
  }
  const json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    c.malformed = true;
    return c;
  }
  if (const auto e = j.find("error"); e != j.end() && !e->is_null()) {
    c.error = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                  ? (*e)["message"].get<std::string>()
                  : e->dump();
    return c;
  }
  if (const auto choices = j.find("choices");
      choices != j.end() && choices->is_array() && !choices->empty()) {
    const json& ch = choices->front();
    if (ch.is_object()) {
      if (const auto ids = ch.find("token_ids"); ids != ch.end() && ids->is_array()) {
        c.num_token_ids = static_cast<int64_t>(ids->size());
      }
      bool text = non_empty_string(ch, "text");
      if (const auto d = ch.find("delta"); d != ch.end() && d->is_object()) {
        text = text || non_empty_string(*d, "content") ||
               non_empty_string(*d, "reasoning_content") || non_empty_string(*d, "reasoning");
      }
      c.has_content = text || c.num_token_ids > 0;
    }
  }
  if (const auto u = j.find("usage"); u != j.end() && u->is_object()) {
    c.has_usage = true;
    c.prompt_tokens = int_or_zero(*u, "prompt_tokens");
    c.completion_tokens = int_or_zero(*u, "completion_tokens");
    if (const auto d = u->find("prompt_tokens_details"); d != u->end() && d->is_object()) {
      c.cached_tokens = int_or_zero(*d, "cached_tokens");
    }
  }
  return c;
}

std::string error_message(int status, std::string_view body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string msg;
  if (j.is_object()) {
    if (const auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) {
        msg = (*e)["message"].get<std::string>();
      } else if (e->is_string()) {
        msg = e->get<std::string>();
      }
    }
    for (const char* key : {"message", "detail"}) {
      if (msg.empty() && j.contains(key) && j[key].is_string()) msg = j[key].get<std::string>();
    }
  }
  if (msg.empty()) msg = std::string(body.substr(0, 200));
  return fmt::format("HTTP {}: {}", status, msg);
}

}  // namespace sluice::bench
