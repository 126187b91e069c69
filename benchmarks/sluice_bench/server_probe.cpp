#include "sluice_bench/server_probe.h"

#include <fmt/format.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

namespace sluice::bench {

using json = nlohmann::json;

StatusOr<std::string> ServerProbe::first_model() {
  SLUICE_ASSIGN_OR_RETURN(HttpOutcome r, client_.call("/v1/models", "", api_key_));
  if (r.status != 200) {
    return Status::unavailable(fmt::format("GET /v1/models: {}", error_message(r.status, r.body)));
  }
  const json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("data") && j["data"].is_array()) {
    for (const json& m : j["data"]) {
      if (m.is_object() && m.contains("id") && m["id"].is_string())
        return m["id"].get<std::string>();
    }
  }
  return Status::not_found(
      fmt::format("GET /v1/models lists no model ({:.200}); pass --model", r.body));
}

bool ServerProbe::has_tokenize(const std::string& model) {
  StatusOr<HttpOutcome> r =
      client_.call("/tokenize", json{{"model", model}, {"prompt", "hello"}}.dump(), api_key_);
  if (!r.is_ok() || r->status != 200) return false;
  const json j = json::parse(r->body, nullptr, false);
  return j.is_object() && j.contains("tokens") && j["tokens"].is_array();
}

StatusOr<int64_t> ServerProbe::count_tokens(const std::string& model, const std::string& prefix,
                                            const std::string& text, bool chat) {
  json body = {{"model", model}};
  if (chat) {
    json messages = json::array();
    if (!prefix.empty()) messages.push_back({{"role", "system"}, {"content", prefix}});
    messages.push_back({{"role", "user"}, {"content", text}});
    body["messages"] = std::move(messages);
    body["add_generation_prompt"] = true;
  } else {
    body["prompt"] = prefix.empty() ? text : prefix + " " + text;
  }
  SLUICE_ASSIGN_OR_RETURN(HttpOutcome r, client_.call("/tokenize", body.dump(), api_key_));
  const json j = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
    return Status::unavailable(fmt::format("POST /tokenize: {}", error_message(r.status, r.body)));
  }
  return static_cast<int64_t>(j["tokens"].size());
}

StatusOr<int32_t> ServerProbe::probe_vocab_size(const std::string& model) {
  // -> 1: accepted, 0: rejected with a 400 (then `rejection` holds its message).
  std::string rejection;
  auto accepted = [&](int64_t id) -> StatusOr<int> {
    const json body = {{"model", model}, {"prompt", json::array({id})}, {"max_tokens", 1}};
    SLUICE_ASSIGN_OR_RETURN(HttpOutcome r, client_.call("/v1/completions", body.dump(), api_key_));
    if (r.status == 200) return 1;
    if (r.status == 400) {
      rejection = error_message(r.status, r.body);
      return 0;
    }
    return Status::unavailable(
        fmt::format("probing token id {}: {}", id, error_message(r.status, r.body)));
  };
  SLUICE_ASSIGN_OR_RETURN(int first, accepted(4));
  if (!first) {
    return Status::failed_precondition(fmt::format(
        "the server rejects token-id prompts on /v1/completions ({}); use --endpoint chat, a "
        "jsonl dataset of text prompts, or --vocab-size if it takes ids in another range",
        rejection));
  }
  // sluice names the range in its rejection ("... outside the vocabulary [0, N)"): one
  // request, checked with a second, instead of ~30 (a 400 never reaches the engine).
  constexpr int64_t kHuge = int64_t{1} << 30;
  SLUICE_ASSIGN_OR_RETURN(int huge_ok, accepted(kHuge));
  if (huge_ok) return Status::failed_precondition("token id 2^30 accepted; give --vocab-size");
  if (const size_t at = rejection.find("[0, "); at != std::string::npos) {
    const int64_t n = std::strtoll(rejection.c_str() + at + 4, nullptr, 10);
    if (n > 5 && n < kHuge) {
      SLUICE_ASSIGN_OR_RETURN(int last_ok, accepted(n - 1));
      SLUICE_ASSIGN_OR_RETURN(int past_ok, accepted(n));
      if (last_ok && !past_ok) return static_cast<int32_t>(n);
    }
  }
  int64_t good = 4, bad = 512;
  while (true) {  // double until an id is rejected
    SLUICE_ASSIGN_OR_RETURN(int ok, accepted(bad - 1));
    if (!ok) break;
    good = bad - 1;
    bad *= 2;
    if (bad > (int64_t{1} << 24)) {
      return Status::failed_precondition("token ids up to 2^24 all accepted; give --vocab-size");
    }
  }
  while (bad - good > 1) {  // largest accepted id in [good, bad)
    const int64_t mid = good + (bad - good) / 2;
    SLUICE_ASSIGN_OR_RETURN(int ok, accepted(mid));
    (ok ? good : bad) = mid;
  }
  return static_cast<int32_t>(good + 1);
}

Status ServerProbe::warm_up(RequestShape* shape, const std::string& path,
                            const BenchPrompt& prompt) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    SLUICE_ASSIGN_OR_RETURN(HttpOutcome r,
                            client_.call(path, build_request_body(prompt, *shape), api_key_));
    std::string error;
    if (r.status != 200) {
      error = error_message(r.status, r.body);
    } else if (!r.event_stream) {
      error = fmt::format("HTTP 200 without an event stream: {:.200}", r.body);
    } else {
      // The body holds the stream's data lines; an {"error": ...} event fails the request.
      size_t start = 0;
      while (start < r.body.size()) {
        size_t end = r.body.find('\n', start);
        if (end == std::string::npos) end = r.body.size();
        const StreamChunk c =
            parse_stream_chunk(std::string_view(r.body).substr(start, end - start));
        if (c.error) error = "stream error: " + *c.error;
        start = end + 1;
      }
    }
    if (error.empty()) return Status::ok();
    if (attempt == 0 && shape->ignore_eos && r.status == 400 &&
        error.find("ignore_eos") != std::string::npos) {
      shape->ignore_eos = false;
      continue;
    }
    return Status::unavailable(fmt::format("the warm-up request to {} failed: {}", path, error));
  }
  return Status::ok();
}

}  // namespace sluice::bench
