// Multi-tenant scheduling through the whole engine, over a FakeExecutor instead of a model.
//
// The fake runs no model: every logit row makes token kToken win, so requests (ignore_eos,
// a fixed max_tokens) run exactly their length, and a step costs next to nothing. It logs
// every plan it executes, so the tests count in engine steps, not wall-clock time: what each
// tenant was served in which step, and when each request was first scheduled. Requests are
// submitted while the engine is paused (EngineConfig::start_paused), so the first iteration
// sees all of them; later arrivals are submitted from inside execute() at a chosen step, so
// they reach the scheduler in the next iteration, deterministically.
//
// Service is the fair-share policy's measure: one unit per prompt position computed, two per
// token sampled, over the window in which both tenants still had requests waiting.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/engine_test_util.h"

namespace sluice::engine {
namespace {

constexpr TokenId kToken = 5;
constexpr int32_t kVocab = 8;

// One logged entry of a plan.
struct Served {
  RequestId id;
  int32_t start = 0;
  int32_t num_new_tokens = 0;
  int32_t num_samples = 0;
};

class FakeExecutor final : public Executor {
 public:
  FakeExecutor() {
    config_.vocab_size = kVocab;
    config_.num_layers = 1;
    config_.max_position_embeddings = 4096;
    models::LayerConfig layer;
    layer.type = models::LayerType::kGlobal;
    layer.head_dim = 4;
    layer.num_kv_heads = 1;
    config_.layers.push_back(layer);
  }

  StatusOr<StepLogits> execute(const scheduler::StepPlan& plan,
                               std::span<const LogitRange> extra) override {
    StepLogits out;
    out.vocab_size = kVocab;
    SLUICE_RETURN_IF_ERROR(builder_.build(plan, extra, 1, &out));
    out.logits.assign(builder_.num_logit_rows() * kVocab, 0.0f);
    for (size_t r = 0; r < builder_.num_logit_rows(); ++r) out.logits[r * kVocab + kToken] = 1.0f;
    std::function<void(int64_t)> hook;
    int64_t step = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<Served> entries;
      for (const auto& s : plan.sequences) {
        entries.push_back({s.request_id, s.start_position, s.num_new_tokens, s.num_samples});
      }
      steps_.push_back(std::move(entries));
      step = static_cast<int64_t>(steps_.size()) - 1;
      hook = on_step;
    }
    if (hook) hook(step);
    return out;
  }
  const models::ModelConfig& config() const override { return config_; }

  // Plans executed so far, [step][sequence].
  std::vector<std::vector<Served>> steps() {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_;
  }

  // Runs on the engine thread after step `step` is logged; set before resume().
  std::function<void(int64_t step)> on_step;

 private:
  models::ModelConfig config_;
  StepBatchBuilder builder_;
  std::mutex mu_;
  std::vector<std::vector<Served>> steps_;
};

struct Harness {
  FakeExecutor* executor = nullptr;  // owned by the engine
  std::unique_ptr<Engine> engine;
};

Harness make_harness(scheduler::SchedulingPolicy policy, int32_t max_num_seqs,
                     int32_t max_num_batched_tokens) {
  auto executor = std::make_unique<FakeExecutor>();
  Harness h;
  h.executor = executor.get();
  EngineConfig c;
  c.max_num_seqs = max_num_seqs;
  c.max_num_batched_tokens = max_num_batched_tokens;
  c.scheduling_policy = policy;
  c.start_paused = true;
  c.enable_prefix_caching = false;  // every prompt position counts as served
  auto engine = Engine::create(std::move(executor), {4096}, c);
  EXPECT_TRUE(engine.is_ok()) << engine.status().message();
  if (engine.is_ok()) h.engine = std::move(engine).value();
  return h;
}

struct TenantSpec {
  uint32_t tenant = 0;
  double weight = 1.0;
  int32_t priority = 0;
  int32_t prompt_len = 8;
  int32_t max_tokens = 8;
};

Request tenant_request(const TenantSpec& t, uint32_t salt) {
  Request r;
  r.prompt.assign(t.prompt_len, 1);
  r.prompt[0] = static_cast<TokenId>(2 + salt % 5);  // no two prompts need to be equal
  r.sampling.temperature = 0.0f;
  r.max_tokens = t.max_tokens;
  r.ignore_eos = true;
  r.tenant = scheduler::TenantId(t.tenant);
  r.weight = t.weight;
  r.priority = t.priority;
  return r;
}

// Submits requests and remembers which tenant each belongs to and when it came.
class Workload {
 public:
  explicit Workload(Engine& engine) : engine_(engine) {}

  RequestId submit(const TenantSpec& t, int64_t after_step = -1) {
    auto sink = std::make_shared<CollectingSink>();
    std::lock_guard<std::mutex> lock(mu_);
    const RequestId id = engine_.submit(tenant_request(t, next_salt_++), sink);
    tenant_[id] = t.tenant;
    submitted_after_[id] = after_step;
    sinks_[id] = std::move(sink);
    return id;
  }
  // Waits for every request, also those submitted while it waits (from on_step hooks).
  bool wait_all() {
    bool ok = true;
    std::set<RequestId> done;
    for (;;) {
      std::map<RequestId, std::shared_ptr<CollectingSink>> sinks;
      {
        std::lock_guard<std::mutex> lock(mu_);
        sinks = sinks_;
      }
      if (sinks.size() == done.size()) return ok;
      for (auto& [id, sink] : sinks) {
        if (!done.insert(id).second) continue;
        ok = sink->wait() && ok;
        EXPECT_EQ(sink->finish(), scheduler::FinishReason::kLength) << "request " << id.value;
      }
    }
  }
  uint32_t tenant(RequestId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return tenant_.at(id);
  }
  // The step during which the request was submitted (-1: before the engine started).
  int64_t submitted_after(RequestId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_after_.at(id);
  }
  // Tokens the sinks received, per tenant.
  std::map<uint32_t, int64_t> tokens_received() {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<uint32_t, int64_t> out;
    for (auto& [id, sink] : sinks_) out[tenant_.at(id)] += sink->tokens().size();
    return out;
  }

 private:
  Engine& engine_;
  std::mutex mu_;
  uint32_t next_salt_ = 0;
  std::map<RequestId, uint32_t> tenant_;
  std::map<RequestId, int64_t> submitted_after_;
  std::map<RequestId, std::shared_ptr<CollectingSink>> sinks_;
};

// The first step that scheduled each request.
std::map<RequestId, int64_t> first_scheduled(const std::vector<std::vector<Served>>& steps) {
  std::map<RequestId, int64_t> first;
  for (size_t s = 0; s < steps.size(); ++s) {
    for (const Served& e : steps[s]) first.emplace(e.id, static_cast<int64_t>(s));
  }
  return first;
}

// Service per tenant in steps [0, end): prompt positions x1 + sampled tokens x2.
std::map<uint32_t, double> service(const std::vector<std::vector<Served>>& steps, int64_t end,
                                   Workload& w, const std::map<RequestId, int32_t>& prompt_len) {
  std::map<uint32_t, double> out;
  for (int64_t s = 0; s < end; ++s) {
    for (const Served& e : steps[s]) {
      const int32_t prompt_end = std::min(e.start + e.num_new_tokens, prompt_len.at(e.id));
      out[w.tenant(e.id)] += std::max(0, prompt_end - e.start) + 2.0 * e.num_samples;
    }
  }
  return out;
}

// Two tenants, both backlogged from the start, with differently shaped requests (long prompts
// and short outputs against short prompts and long outputs). Returns service(A) / service(B)
// over the window in which both still had requests waiting to be admitted.
double backlogged_service_ratio(double weight_a, double weight_b) {
  Harness h = make_harness(scheduler::SchedulingPolicy::kFair, 4, 64);
  if (h.engine == nullptr) return 0.0;
  Workload w(*h.engine);
  const TenantSpec a{1, weight_a, 0, 40, 6};
  const TenantSpec b{2, weight_b, 0, 6, 20};
  std::map<RequestId, int32_t> prompt_len;
  for (int i = 0; i < 120; ++i) {
    prompt_len[w.submit(a)] = a.prompt_len;
    prompt_len[w.submit(b)] = b.prompt_len;
  }
  h.engine->resume();
  EXPECT_TRUE(w.wait_all());
  const auto steps = h.executor->steps();
  // The window ends when either tenant's last request is admitted: its queue is empty then.
  std::map<uint32_t, int64_t> last_admitted;
  for (const auto& [id, step] : first_scheduled(steps)) {
    last_admitted[w.tenant(id)] = std::max(last_admitted[w.tenant(id)], step);
  }
  const int64_t end = std::min(last_admitted[1], last_admitted[2]);
  EXPECT_GT(end, 100) << "the window is too short to judge";
  auto served = service(steps, end, w, prompt_len);
  EXPECT_GT(served[2], 0.0);
  // The sinks got every token the executor sampled: 120 requests x max_tokens per tenant.
  auto received = w.tokens_received();
  EXPECT_EQ(received[1], 120 * a.max_tokens);
  EXPECT_EQ(received[2], 120 * b.max_tokens);
  std::cout << "service over steps [0, " << end << "): A " << served[1] << ", B " << served[2]
            << "\n";
  return served[2] > 0 ? served[1] / served[2] : 0.0;
}

TEST(FairnessTest, EqualWeightsShareEqually) {
  const double ratio = backlogged_service_ratio(1.0, 1.0);
  EXPECT_NEAR(ratio, 1.0, 0.1) << "service A / B";
}

TEST(FairnessTest, TwoToOneWeightsShareTwoToOne) {
  const double ratio = backlogged_service_ratio(2.0, 1.0);
  EXPECT_NEAR(ratio / 2.0, 1.0, 0.1) << "service A / B = " << ratio;
}

// A heavy tenant floods the queue before the engine starts; a light one sends one request
// every 60 steps. Returns, for each light request, the steps between its submission and its
// first schedule.
struct FloodResult {
  std::vector<int64_t> light_waits;
  // Requests of the heavy tenant submitted before each light one but first scheduled after it.
  int64_t overtaken = 0;
};

FloodResult run_flood(scheduler::SchedulingPolicy policy) {
  Harness h = make_harness(policy, 4, 64);
  FloodResult result;
  if (h.engine == nullptr) return result;
  Workload w(*h.engine);
  const TenantSpec heavy{1, 1.0, 0, 16, 24};
  const TenantSpec light{2, 1.0, 0, 8, 4};
  for (int i = 0; i < 300; ++i) w.submit(heavy);
  constexpr int64_t kEvery = 60, kLight = 5;
  int64_t num_light = 0;
  h.executor->on_step = [&](int64_t step) {
    if (step % kEvery == kEvery - 1 && num_light < kLight) {
      ++num_light;
      w.submit(light, step);
    }
  };
  h.engine->resume();
  // Every light request has been submitted once the flood is over (it outlasts 5 x 60 steps).
  EXPECT_TRUE(w.wait_all());
  h.engine->stop();
  const auto steps = h.executor->steps();
  const auto first = first_scheduled(steps);
  EXPECT_EQ(first.size(), 300u + kLight);
  for (const auto& [id, step] : first) {
    if (w.tenant(id) != light.tenant) continue;
    result.light_waits.push_back(step - w.submitted_after(id));
    for (const auto& [other, other_step] : first) {
      if (w.tenant(other) == heavy.tenant && other < id && other_step > step) ++result.overtaken;
    }
  }
  return result;
}

TEST(FairnessTest, LightTenantWaitStaysBoundedUnderAFlood) {
  const FloodResult r = run_flood(scheduler::SchedulingPolicy::kFair);
  ASSERT_EQ(r.light_waits.size(), 5u);
  std::cout << "light waits (steps):";
  for (int64_t wait : r.light_waits) std::cout << " " << wait;
  std::cout << "\n";
  // A seat frees at the latest when a heavy request ends (24 tokens: 1 prefill step + 23
  // decodes); the light request takes the next one.
  for (int64_t wait : r.light_waits) {
    EXPECT_GE(wait, 1);
    EXPECT_LE(wait, 26) << "a light request waited " << wait << " steps";
  }
  EXPECT_GT(r.overtaken, 0);  // it went ahead of queued heavy requests
}

TEST(FairnessTest, FcfsMakesTheLightTenantWaitBehindTheFlood) {
  const FloodResult fcfs = run_flood(scheduler::SchedulingPolicy::kFcfs);
  ASSERT_EQ(fcfs.light_waits.size(), 5u);
  EXPECT_EQ(fcfs.overtaken, 0);  // arrival order, whatever the tenant
  // The first light request (step 59) queues behind ~290 heavy ones: 4 seats, 24 steps each.
  EXPECT_GT(fcfs.light_waits.front(), 1000);
  std::cout << "light waits under fcfs (steps):";
  for (int64_t wait : fcfs.light_waits) std::cout << " " << wait;
  std::cout << "\n";
  const FloodResult fair = run_flood(scheduler::SchedulingPolicy::kFair);
  ASSERT_EQ(fair.light_waits.size(), 5u);
  EXPECT_GT(*std::min_element(fcfs.light_waits.begin(), fcfs.light_waits.end()),
            20 * *std::max_element(fair.light_waits.begin(), fair.light_waits.end()));
}

// Priority classes are strict at admission: nothing of a worse class is admitted while a
// better one waits, however far its tenant is behind in the fair share.
TEST(FairnessTest, PriorityClassesAreStrict) {
  Harness h = make_harness(scheduler::SchedulingPolicy::kFair, 4, 64);
  ASSERT_NE(h.engine, nullptr);
  Workload w(*h.engine);
  // The urgent tenant has a tiny weight: its counter races ahead of the batch tenant's.
  const TenantSpec batch{1, 100.0, 1, 8, 8};
  const TenantSpec urgent{2, 0.01, 0, 8, 8};
  for (int i = 0; i < 80; ++i) w.submit(batch);
  for (int i = 0; i < 40; ++i) w.submit(urgent);
  // Mid-run, more urgent work arrives: it goes ahead of the batch requests still queued.
  std::vector<RequestId> late;
  h.executor->on_step = [&](int64_t step) {
    if (step == 150) {
      for (int i = 0; i < 8; ++i) late.push_back(w.submit(urgent, step));
    }
  };
  h.engine->resume();
  ASSERT_TRUE(w.wait_all());
  h.engine->stop();
  const auto first = first_scheduled(h.executor->steps());
  int64_t last_urgent_initial = 0, first_batch = std::numeric_limits<int64_t>::max();
  for (const auto& [id, step] : first) {
    if (w.tenant(id) == urgent.tenant && w.submitted_after(id) < 0) {
      last_urgent_initial = std::max(last_urgent_initial, step);
    }
    if (w.tenant(id) == batch.tenant) first_batch = std::min(first_batch, step);
  }
  EXPECT_LT(last_urgent_initial, first_batch);
  ASSERT_EQ(late.size(), 8u);
  for (RequestId id : late) {
    const int64_t admitted = first.at(id);
    for (const auto& [other, step] : first) {
      // No batch request waiting when the late urgent ones came was admitted before them.
      if (w.tenant(other) == batch.tenant && step > 150) {
        EXPECT_GE(step, admitted);
      }
    }
  }
}

// One tenant, one priority: fair share and FCFS admit in the same order.
TEST(FairnessTest, OneTenantIsFcfs) {
  std::vector<std::map<RequestId, int64_t>> orders;
  for (auto policy : {scheduler::SchedulingPolicy::kFair, scheduler::SchedulingPolicy::kFcfs}) {
    Harness h = make_harness(policy, 3, 32);
    ASSERT_NE(h.engine, nullptr);
    Workload w(*h.engine);
    for (int i = 0; i < 30; ++i) w.submit(TenantSpec{7, 1.0, 0, 4 + i % 7, 3 + i % 5});
    h.engine->resume();
    ASSERT_TRUE(w.wait_all());
    h.engine->stop();
    orders.push_back(first_scheduled(h.executor->steps()));
  }
  EXPECT_EQ(orders[0], orders[1]);
}

}  // namespace
}  // namespace sluice::engine
