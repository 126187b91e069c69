#include "server/generate_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "engine/chat/chat_formatter.h"
#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
#include "kernels/cpu/thread_pool.h"
#include "server/model_path.h"

namespace sluice::server {
namespace {

StatusOr<std::vector<int32_t>> parse_token_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string_view item(text.data() + i, j - i);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < 0 ||
        v > INT32_MAX) {
      return Status::invalid_argument(
          fmt::format("--prompt-token-ids: '{}' is not a token id", std::string(item)));
    }
    ids.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  if (ids.empty()) return Status::invalid_argument("--prompt-token-ids: no ids given");
  return ids;
}

// Emits the longest complete-UTF-8 prefix of `pending` and keeps the rest, so a character
// whose bytes span several tokens is printed whole.
std::string take_complete_utf8(std::string& pending) {
  size_t n = pending.size();
  // Look back at most 3 bytes for the start of an unfinished sequence.
  size_t cut = n;
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(pending[n - back]);
    if ((c & 0xc0) == 0x80) continue;  // continuation byte
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (need > back) cut = n - back;
    break;
  }
  std::string out = pending.substr(0, cut);
  pending.erase(0, cut);
  return out;
}

// Hands deltas from the engine thread to the printing thread (push() only enqueues).
class QueueSink : public engine::OutputSink {
 public:
  void push(engine::Delta d) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      deltas_.push_back(std::move(d));
    }
    cv_.notify_one();
  }
  engine::Delta pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !deltas_.empty(); });
    engine::Delta d = std::move(deltas_.front());
    deltas_.pop_front();
    return d;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<engine::Delta> deltas_;
};

int fail(const Status& s, int code) {
  std::fprintf(stderr, "sluice generate: %s\n", s.message().c_str());
  return code;
}

}  // namespace

CLI::App* add_generate_command(CLI::App& app, GenerateOptions& o) {
  CLI::App* g = app.add_subcommand("generate", "Generate one continuation on the CPU, streamed");
  g->add_option("--model", o.model, "GGUF file, Hugging Face directory, or 'default'")
      ->capture_default_str();
  g->add_option("--prompt", o.prompt, "Prompt text (BOS added as the model says)");
  g->add_flag("--chat", o.chat, "Wrap the prompt in the model's chat format as a user turn");
  g->add_option("--max-tokens", o.max_tokens, "Tokens to generate")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  g->add_option("--temperature", o.temperature, "Sampling temperature; 0 means greedy")
      ->check(CLI::Range(0.0f, 2.0f))
      ->capture_default_str();
  g->add_option("--top-k", o.top_k, "Keep the k most likely tokens (-1: off)")->capture_default_str();
  g->add_option("--top-p", o.top_p, "Nucleus sampling mass, (0, 1]")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  g->add_option("--min-p", o.min_p, "Drop tokens below min_p x the best probability")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  g->add_option("--seed", o.seed, "Seed for sampling");
  g->add_option("--threads", o.threads, "CPU threads (0: all cores)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  g->add_option("--max-model-len", o.max_model_len, "Context length cap (0: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  g->add_option("--prompt-token-ids", o.prompt_token_ids,
                "Comma-separated prompt token ids, used as given (no BOS added)");
  g->add_flag("--output-token-ids", o.output_token_ids,
              "Print the generated ids (one comma-separated line) instead of text");
  g->add_option("--dump-logits", o.dump_logits,
                "Write the logits of every prompt position and generated step (raw f32, "
                "[steps, vocab]) to this file");
  g->add_option("--log-format", o.log_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  return g;
}

int run_generate(const GenerateOptions& o) {
  if (o.prompt.empty() && o.prompt_token_ids.empty()) {
    return fail(Status::invalid_argument("give --prompt TEXT or --prompt-token-ids IDS"), 2);
  }
  if (!o.prompt.empty() && !o.prompt_token_ids.empty()) {
    return fail(Status::invalid_argument("--prompt and --prompt-token-ids are exclusive"), 2);
  }
  if (o.top_p <= 0.0f) return fail(Status::invalid_argument("--top-p must be in (0, 1]"), 2);
  if (o.top_k == 0 || o.top_k < -1) return fail(Status::invalid_argument("--top-k must be -1 or >= 1"), 2);
  kernels::cpu::set_num_threads(o.threads > 0 ? o.threads
                                              : static_cast<int>(std::thread::hardware_concurrency()));

  auto path = resolve_model_path(o.model);
  if (!path.is_ok()) return fail(path.status(), 2);
  auto loaded_or = models::load_model(*path, models::LoadOptions{}, kernels::cpu_ops());
  if (!loaded_or.is_ok()) return fail(loaded_or.status(), 2);
  models::LoadedModel& lm = *loaded_or;
  // Stays valid while the engine (which takes the model) lives.
  const models::ModelConfig& cfg = lm.model->config();
  SLUICE_LOG_INFO("loaded {} ({})", lm.path, cfg.summary());

  std::vector<int32_t> prompt;
  if (!o.prompt_token_ids.empty()) {
    auto ids = parse_token_ids(o.prompt_token_ids);
    if (!ids.is_ok()) return fail(ids.status(), 2);
    prompt = std::move(*ids);
  } else {
    if (!lm.tokenizer) {
      return fail(Status::invalid_argument(fmt::format(
                      "{} has no tokenizer; give the prompt as --prompt-token-ids", lm.path)),
                  2);
    }
    if (o.chat) {
      // The model's own chat template when it ships one, else the built-in Gemma 3 format.
      auto formatter = chat::ChatFormatter::create(lm.chat_template);
      if (!formatter.is_ok()) {
        return fail(Status::invalid_argument(fmt::format("{}: chat template: {}", lm.path,
                                                         formatter.status().message())),
                    2);
      }
      chat::ChatMessage user{"user", o.prompt, {}};
      auto rendered = formatter->render(std::span(&user, 1), {});
      if (!rendered.is_ok()) return fail(rendered.status(), 2);
      // The rendered text carries <bos> itself: parse specials, add no BOS.
      prompt = lm.tokenizer->encode(*rendered, /*add_bos=*/false, /*parse_special=*/true);
    } else {
      prompt = lm.tokenizer->encode(o.prompt, lm.tokenizer->add_bos_default(), /*parse_special=*/false);
    }
  }
  for (int32_t id : prompt) {
    if (id < 0 || id >= cfg.vocab_size) {
      return fail(Status::invalid_argument(fmt::format(
                      "prompt token id {} is outside the vocabulary [0, {})", id, cfg.vocab_size)),
                  2);
    }
  }
  int64_t context = cfg.max_position_embeddings;
  if (o.max_model_len > 0) context = std::min<int64_t>(context, o.max_model_len);
  if (static_cast<int64_t>(prompt.size()) + o.max_tokens > context) {
    return fail(Status::invalid_argument(fmt::format(
                    "This model's maximum context length is {} tokens. However, you requested {} "
                    "tokens ({} in the prompt, {} in the completion). Please reduce the prompt "
                    "or --max-tokens.",
                    context, prompt.size() + o.max_tokens, prompt.size(), o.max_tokens)),
                2);
  }

  // The run goes through the engine like a served request: one request, one choice, a pool
  // just big enough for it, and the whole prompt in one step (as a single forward would).
  engine::Request request;
  request.prompt = prompt;
  request.max_tokens = o.max_tokens;
  request.stop_token_ids = lm.defaults.stop_token_ids;
  request.sampling.temperature = o.temperature;
  request.sampling.top_k = o.top_k;
  request.sampling.top_p = o.top_p;
  request.sampling.min_p = o.min_p;
  request.sampling.seed = o.seed;
  request.debug_logits = !o.dump_logits.empty();

  std::ofstream dump;
  if (!o.dump_logits.empty()) {
    dump.open(o.dump_logits, std::ios::binary | std::ios::trunc);
    if (!dump) return fail(Status::invalid_argument(fmt::format("--dump-logits {}: cannot write", o.dump_logits)), 2);
  }

  engine::EngineConfig ec;
  constexpr int32_t kBlockSize = 16;
  const int64_t total_tokens = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  ec.block_size = kBlockSize;
  ec.num_blocks.assign(models::kv_group_layouts(cfg).size(),
                       static_cast<int32_t>((total_tokens + kBlockSize - 1) / kBlockSize + 1));
  ec.max_num_seqs = 1;
  ec.max_num_batched_tokens = static_cast<int32_t>(std::max<size_t>(prompt.size(), 1));
  ec.max_model_len = static_cast<int32_t>(context);
  ec.enable_prefix_caching = false;
  auto engine_or = engine::Engine::create(std::move(lm.model), ec);
  if (!engine_or.is_ok()) return fail(engine_or.status(), 1);
  std::unique_ptr<engine::Engine> engine = std::move(engine_or).value();

  // Deltas arrive on the engine thread; this thread takes them off the queue and prints.
  auto sink = std::make_shared<QueueSink>();
  engine->submit(std::move(request), sink);

  std::vector<int32_t> generated;
  std::string pending;
  const std::vector<int32_t>& stops = lm.defaults.stop_token_ids;
  const bool stream_text = !o.output_token_ids && lm.tokenizer != nullptr;
  for (;;) {
    engine::Delta d = sink->pop();
    if (dump.is_open()) {
      dump.write(reinterpret_cast<const char*>(d.debug_logits.data()),
                 static_cast<std::streamsize>(d.debug_logits.size() * sizeof(float)));
    }
    for (int32_t next : d.token_ids) {
      generated.push_back(next);
      const bool stop = std::find(stops.begin(), stops.end(), next) != stops.end();
      if (stream_text && !stop) {
        pending += lm.tokenizer->decode(std::span(&generated.back(), 1));
        std::string text = take_complete_utf8(pending);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      }
    }
    if (!d.finish_reason.has_value()) continue;
    if (*d.finish_reason == scheduler::FinishReason::kAbort) {
      return fail(Status::internal("the engine aborted the request (see the log)"), 1);
    }
    break;
  }
  engine->stop();
  if (o.output_token_ids) {
    std::string line;
    for (size_t i = 0; i < generated.size(); ++i) line += (i ? "," : "") + std::to_string(generated[i]);
    std::printf("%s\n", line.c_str());
  } else if (stream_text) {
    std::fwrite(pending.data(), 1, pending.size(), stdout);
    std::printf("\n");
  } else {
    // No tokenizer: ids are the only output there is.
    std::string line;
    for (size_t i = 0; i < generated.size(); ++i) line += (i ? "," : "") + std::to_string(generated[i]);
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace sluice::server
