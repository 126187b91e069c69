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
#include <vector>

#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
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

  std::function<void(const Delta&)> on_push;  // set before submitting

 private:
  struct Choice {
    std::vector<TokenId> tokens;
    std::optional<scheduler::FinishReason> finish;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int32_t, Choice> choices_;
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

// Runs one request to completion on `engine` and returns its sink.
inline std::shared_ptr<CollectingSink> run_one(Engine& engine, Request request) {
  auto sink = std::make_shared<CollectingSink>(request.n);
  engine.submit(std::move(request), sink);
  EXPECT_TRUE(sink->wait());
  return sink;
}

}  // namespace sluice::engine
