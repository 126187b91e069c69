#include "engine/runtime/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "common/check.h"
#include "common/log.h"

namespace sluice::engine {

StatusOr<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<models::Model> model,
                                                 EngineConfig config) {
  if (model == nullptr) return Status::invalid_argument("engine: no model");
  const models::ModelConfig& mc = model->config();
  if (config.block_size < 1) {
    return Status::invalid_argument(fmt::format("engine: block_size {} < 1", config.block_size));
  }
  const std::vector<models::KvGroupLayout> layouts = models::kv_group_layouts(mc);
  std::vector<int32_t> num_blocks = config.num_blocks;
  if (num_blocks.empty()) {
    uint64_t per_block = 0;
    for (const auto& g : layouts) per_block += g.bytes_per_block(config.block_size);
    const uint64_t blocks = per_block == 0 ? 0 : config.kv_cache_memory_bytes / per_block;
    if (blocks < 1 || blocks > INT32_MAX) {
      return Status::invalid_argument(
          fmt::format("engine: kv_cache_memory_bytes {} gives {} blocks of {} bytes (need 1 to {})",
                      config.kv_cache_memory_bytes, blocks, per_block, INT32_MAX));
    }
    num_blocks.assign(layouts.size(), static_cast<int32_t>(blocks));
  }
  if (num_blocks.size() != layouts.size()) {
    return Status::invalid_argument(fmt::format(
        "engine: num_blocks has {} entries for {} KV groups", num_blocks.size(), layouts.size()));
  }
  if (config.max_model_len == 0) config.max_model_len = mc.max_position_embeddings;
  if (config.max_model_len < 1 || config.max_model_len > mc.max_position_embeddings) {
    return Status::invalid_argument(fmt::format("engine: max_model_len {} outside [1, {}]",
                                                config.max_model_len, mc.max_position_embeddings));
  }
  std::vector<scheduler::KvGroupSpec> specs = kv_group_specs(mc, config.block_size, num_blocks);
  scheduler::KvCacheOptions kv_options;
  kv_options.enable_prefix_caching = config.enable_prefix_caching;
  SLUICE_ASSIGN_OR_RETURN(scheduler::KvCacheManager kv,
                          scheduler::KvCacheManager::create(specs, kv_options));
  scheduler::SchedulerConfig sc;
  sc.max_num_batched_tokens = config.max_num_batched_tokens;
  sc.max_num_seqs = config.max_num_seqs;
  sc.max_model_len = config.max_model_len;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Scheduler> sched,
                          scheduler::Scheduler::create(sc, std::move(kv), nullptr));
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<CpuExecutor> executor,
                          CpuExecutor::create(std::move(model), specs));
  std::unique_ptr<Engine> engine(
      new Engine(std::move(config), std::move(sched), std::move(executor)));
  engine->refresh_stats();
  engine->thread_ = std::thread([e = engine.get()] { e->loop(); });
  return engine;
}

Engine::Engine(EngineConfig config, std::unique_ptr<scheduler::Scheduler> scheduler,
               std::unique_ptr<CpuExecutor> executor)
    : config_(std::move(config)),
      scheduler_(std::move(scheduler)),
      executor_(std::move(executor)),
      paused_(config_.start_paused) {}

Engine::~Engine() { stop(); }

RequestId Engine::submit(Request request, std::shared_ptr<OutputSink> sink) {
  std::lock_guard<std::mutex> lock(mu_);
  RequestId id(next_id_++);
  submits_.push_back({id, std::move(request), std::move(sink)});
  cv_.notify_one();
  return id;
}

void Engine::abort(RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  aborts_.push_back(id);
  cv_.notify_one();
}

void Engine::resume() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = false;
  cv_.notify_one();
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

void Engine::refresh_stats() {
  const scheduler::SchedulerStats s = scheduler_->stats();
  EngineStats e;
  e.num_running = s.num_running;
  e.num_waiting = s.num_waiting;
  e.num_running_requests = s.num_running_requests;
  e.num_waiting_requests = s.num_waiting_requests;
  e.kv_blocks_used = s.kv.num_used_blocks;
  e.kv_blocks_total = s.kv.num_blocks;
  e.kv_usage = s.kv.usage;
  e.prefix_hit_tokens = s.kv.prefix_hit_tokens;
  e.prefix_query_tokens = s.kv.prefix_query_tokens;
  e.num_preemptions = s.num_preemptions;
  e.num_generation_tokens = s.num_generation_tokens;
  e.num_steps = num_steps_;
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = std::move(e);
}

void Engine::add(Pending p, std::vector<Outgoing>& out) {
  auto reject = [&](const Status& status) {
    SLUICE_LOG_INFO("request {} rejected: {}", p.id.value, status.message());
    out.push_back({p.sink, Delta{p.id, 0, {}, scheduler::FinishReason::kAbort}});
  };
  const Status valid = sampling::validate(p.request.sampling, model_config().vocab_size);
  if (!valid.is_ok()) return reject(valid);
  for (TokenId t : p.request.prompt) {
    if (t < 0 || t >= model_config().vocab_size) {
      return reject(Status::invalid_argument(
          fmt::format("prompt token id {} outside [0, {})", t, model_config().vocab_size)));
    }
  }
  auto spec = scheduler::RequestSpec{};
  spec.id = p.id;
  spec.prompt_token_ids = p.request.prompt;
  spec.max_tokens = p.request.max_tokens;
  spec.min_tokens = p.request.sampling.min_tokens;
  spec.stop_token_ids = p.request.stop_token_ids;
  spec.eos_token_ids = config_.eos_token_ids;
  spec.ignore_eos = p.request.ignore_eos;
  spec.n = p.request.n;
  spec.tenant = p.request.tenant;
  spec.priority = p.request.priority;
  spec.weight = p.request.weight;
  spec.cache_keys.cache_namespace = p.request.cache_namespace;
  const Status added = scheduler_->add_request(std::move(spec));
  if (!added.is_ok()) return reject(added);

  Live live;
  live.sink = std::move(p.sink);
  live.params = std::move(p.request.sampling);
  std::vector<int32_t>& stops = live.params.stop_token_ids;
  stops.insert(stops.end(), p.request.stop_token_ids.begin(), p.request.stop_token_ids.end());
  if (!p.request.ignore_eos)
    stops.insert(stops.end(), config_.eos_token_ids.begin(), config_.eos_token_ids.end());
  std::sort(stops.begin(), stops.end());
  stops.erase(std::unique(stops.begin(), stops.end()), stops.end());
  live.prompt = std::move(p.request.prompt);
  live_.emplace(p.id, std::move(live));
}

sampling::Sampler& Engine::sampler_for(Live& live, int32_t choice) {
  auto it = live.samplers.find(choice);
  if (it != live.samplers.end()) return *it->second;
  sampling::SamplingParams params = live.params;
  if (params.seed.has_value()) params.seed = *params.seed + static_cast<uint64_t>(choice);
  auto sampler = std::make_unique<sampling::Sampler>(params, live.prompt);
  sampling::Sampler& ref = *sampler;
  live.samplers.emplace(choice, std::move(sampler));
  return ref;
}

void Engine::publish(const std::vector<scheduler::SequenceOutput>& outputs,
                     std::vector<Outgoing>& out) {
  for (const scheduler::SequenceOutput& o : outputs) {
    auto it = live_.find(o.request_id);
    if (it == live_.end()) continue;
    out.push_back(
        {it->second.sink, Delta{o.request_id, o.choice_index, o.new_token_ids, o.finish_reason}});
    if (o.finish_reason.has_value()) it->second.samplers.erase(o.choice_index);
    if (o.request_finished) live_.erase(it);
  }
}

void Engine::fail_plan(const scheduler::StepPlan& plan, const Status& status,
                       std::vector<Outgoing>& out) {
  SLUICE_LOG_ERROR("step {} failed: {}", plan.step_id, status.message());
  // The plan still goes to update() (with nothing sampled) so that the scheduler accepts the
  // next schedule(); then every request in it is aborted.
  scheduler::StepResult empty;
  empty.sampled_token_ids.resize(plan.sequences.size());
  std::unordered_set<RequestId> ids;
  for (const auto& s : plan.sequences) ids.insert(s.request_id);
  for (RequestId id : ids) publish(scheduler_->abort(id), out);
  scheduler_->update(plan, empty);
}

void Engine::loop() {
  std::vector<Outgoing> out;
  for (;;) {
    std::deque<Pending> submits;
    std::vector<RequestId> aborts;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stopping_ || (!paused_ && (!submits_.empty() || !aborts_.empty() ||
                                          scheduler_->has_unfinished()));
      });
      if (stopping_) return;
      submits.swap(submits_);
      aborts.swap(aborts_);
    }
    out.clear();
    const std::unordered_set<RequestId> aborted(aborts.begin(), aborts.end());
    for (Pending& p : submits) {
      if (aborted.count(p.id) != 0) {  // aborted while still in the queue
        out.push_back({p.sink, Delta{p.id, 0, {}, scheduler::FinishReason::kAbort}});
        continue;
      }
      add(std::move(p), out);
    }
    for (RequestId id : aborts) publish(scheduler_->abort(id), out);

    if (scheduler_->has_unfinished()) {
      scheduler::StepPlan plan = scheduler_->schedule();
      if (plan.empty()) {
        // Nothing fits (should not happen: add_request checks that one sequence fits).
        SLUICE_LOG_ERROR("engine: empty plan with {} waiting sequences; aborting them",
                         scheduler_->num_waiting());
        scheduler_->update(plan, {});
        std::vector<RequestId> ids;
        for (const auto& [id, live] : live_) ids.push_back(id);
        for (RequestId id : ids) publish(scheduler_->abort(id), out);
      } else {
        StatusOr<StepLogits> logits = executor_->execute(plan);
        if (!logits.is_ok()) {
          fail_plan(plan, logits.status(), out);
        } else {
          ++num_steps_;
          scheduler::StepResult result;
          result.sampled_token_ids.resize(plan.sequences.size());
          for (size_t i = 0; i < plan.sequences.size(); ++i) {
            const scheduler::ScheduledSequence& s = plan.sequences[i];
            if (s.num_samples == 0) continue;
            auto it = live_.find(s.request_id);
            SLUICE_CHECK(it != live_.end(), "no live request {} for a scheduled sequence",
                         s.request_id.value);
            const std::span<const float> row = logits->row(logits->row_of_sequence[i]);
            for (int32_t j = 0; j < s.num_samples; ++j) {
              // n > 1 forks: entry j is choice j; otherwise the sequence's own choice.
              const int32_t choice = s.num_samples > 1 ? j : s.choice_index;
              sampling::Sampler& sampler = sampler_for(it->second, choice);
              const int32_t token = sampler.sample(row);
              sampler.accept(token);
              result.sampled_token_ids[i].push_back(token);
            }
          }
          publish(scheduler_->update(plan, result).outputs, out);
        }
      }
    }
    refresh_stats();
    for (Outgoing& o : out) {
      if (o.sink != nullptr) o.sink->push(std::move(o.delta));
    }
  }
}

}  // namespace sluice::engine
