#pragma once
// Helpers for the engine tests: a sink that collects deltas and lets the test wait for the
// end of a request, and the tiny fixture model.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
#include "engine/sampling/sampler.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace sluice::engine {

// Collects the deltas of one request. `on_push` (optional) runs on the engine thread after
// each delta is recorded.
class CollectingSink : public OutputSink {
 public:
  explicit CollectingSink(int32_t num_choices = 1) : num_choices_(num_choices) {}

  void push(Delta d) override {
    std::function<void(const Delta&)> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Choice& c = choices_[d.choice];
      c.tokens.insert(c.tokens.end(), d.token_ids.begin(), d.token_ids.end());
      if (d.finish_reason.has_value()) {
        EXPECT_FALSE(c.finish.has_value()) << "choice " << d.choice << " finished twice";
        c.finish = d.finish_reason;
        ++num_finished_;
      }
      ++num_deltas_;
      deltas_.push_back(d);
      hook = on_push;
    }
    if (hook) hook(d);
    cv_.notify_all();
  }

  // Waits until every choice has finished (a generous bound only guards against a hang).
  bool wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(120),
                        [&] { return num_finished_ >= num_choices_; });
  }

  std::vector<TokenId> tokens(int32_t choice = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    return choices_[choice].tokens;
  }
  std::optional<scheduler::FinishReason> finish(int32_t choice = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    return choices_[choice].finish;
  }
  int num_deltas() {
    std::lock_guard<std::mutex> lock(mu_);
    return num_deltas_;
  }
  // Every delta received, in order (all choices).
  std::vector<Delta> deltas() {
    std::lock_guard<std::mutex> lock(mu_);
    return deltas_;
  }
  // The deltas of one choice, in order.
  std::vector<Delta> deltas(int32_t choice) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Delta> out;
    for (const Delta& d : deltas_) {
      if (d.choice == choice) out.push_back(d);
    }
    return out;
  }

  std::function<void(const Delta&)> on_push;  // set before submitting

 private:
  struct Choice {
    std::vector<TokenId> tokens;
    std::optional<scheduler::FinishReason> finish;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int32_t, Choice> choices_;
  std::vector<Delta> deltas_;
  int32_t num_choices_;
  int num_finished_ = 0;
  int num_deltas_ = 0;
};

inline std::unique_ptr<models::Model> load_tiny_model() {
  auto loaded = models::load_model(testing::fixture_path("gemma3_tiny"), {}, kernels::cpu_ops());
  EXPECT_TRUE(loaded.is_ok()) << loaded.status().message();
  if (!loaded.is_ok()) return nullptr;
  return std::move(loaded->model);
}

inline std::unique_ptr<Engine> make_engine(EngineConfig config) {
  auto model = load_tiny_model();
  if (model == nullptr) return nullptr;
  auto engine = Engine::create(std::move(model), std::move(config));
  EXPECT_TRUE(engine.is_ok()) << engine.status().message();
  if (!engine.is_ok()) return nullptr;
  return std::move(engine).value();
}

inline Request greedy_request(std::vector<TokenId> prompt, int32_t max_tokens) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.max_tokens = max_tokens;
  return r;
}

// `count` prompts of random ids in [3, 511] with lengths in [min_len, max_len].
inline std::vector<std::vector<TokenId>> random_prompts(int count, int min_len, int max_len,
                                                        uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(min_len, max_len), id(3, 511);
  std::vector<std::vector<TokenId>> prompts(count);
  for (auto& p : prompts) {
    p.resize(len(rng));
    for (TokenId& t : p) t = id(rng);
  }
  return prompts;
}

// Greedy generation with models::SequenceKv and argmax: the reference without paging.
inline std::vector<TokenId> reference_greedy(models::Model& model,
                                             const std::vector<TokenId>& prompt, int max_tokens) {
  models::SequenceKv kv(model.config());
  std::vector<float> logits(model.config().vocab_size);
  std::vector<TokenId> out;
  std::vector<TokenId> next = prompt;
  for (int i = 0; i < max_tokens; ++i) {
    Status s = kv.forward(model, next, 1, logits);
    EXPECT_TRUE(s.is_ok()) << s.message();
    if (!s.is_ok()) return out;
    out.push_back(sampling::argmax(logits));
    next = {out.back()};
  }
  return out;
}

// The raw logits [tokens.size(), vocab] of every position of `tokens`, run in one pass
// through models::SequenceKv: row p is the distribution of the token after position p.
inline std::vector<float> reference_logits(models::Model& model,
                                           const std::vector<TokenId>& tokens) {
  models::SequenceKv kv(model.config());
  std::vector<float> logits(tokens.size() * static_cast<size_t>(model.config().vocab_size));
  Status s = kv.forward(model, tokens, static_cast<int>(tokens.size()), logits);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return logits;
}

// Runs one request to completion on `engine` and returns its sink.
inline std::shared_ptr<CollectingSink> run_one(Engine& engine, Request request) {
  auto sink = std::make_shared<CollectingSink>(request.n);
  engine.submit(std::move(request), sink);
  EXPECT_TRUE(sink->wait());
  return sink;
}

}  // namespace sluice::engine
