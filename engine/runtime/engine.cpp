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
  std::vector<scheduler::KvGroupSpec> specs = kv_group_specs(mc, config.block_size, num_blocks);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<CpuExecutor> executor,
                          CpuExecutor::create(std::move(model), specs, config.parallel));
  return start(std::move(executor), specs, std::move(config));
}

StatusOr<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<Executor> executor,
                                                 std::vector<int32_t> num_blocks,
                                                 EngineConfig config) {
  if (executor == nullptr) return Status::invalid_argument("engine: no executor");
  if (config.block_size < 1) {
    return Status::invalid_argument(fmt::format("engine: block_size {} < 1", config.block_size));
  }
  const models::ModelConfig& mc = executor->config();
  const size_t num_groups = models::kv_group_layouts(mc).size();
  if (num_blocks.size() != num_groups) {
    return Status::invalid_argument(fmt::format(
        "engine: num_blocks has {} entries for {} KV groups", num_blocks.size(), num_groups));
  }
  for (int32_t b : num_blocks) {
    if (b < 1)
      return Status::invalid_argument(
          fmt::format("engine: {} KV blocks in a group (need >= 1)", b));
  }
  std::vector<scheduler::KvGroupSpec> specs = kv_group_specs(mc, config.block_size, num_blocks);
  return start(std::move(executor), specs, std::move(config));
}

StatusOr<std::unique_ptr<Engine>> Engine::start(std::unique_ptr<Executor> executor,
                                                const std::vector<scheduler::KvGroupSpec>& specs,
                                                EngineConfig config) {
  const models::ModelConfig& mc = executor->config();
  if (config.max_model_len == 0) config.max_model_len = mc.max_position_embeddings;
  if (config.max_model_len < 1 || config.max_model_len > mc.max_position_embeddings) {
    return Status::invalid_argument(fmt::format("engine: max_model_len {} outside [1, {}]",
                                                config.max_model_len, mc.max_position_embeddings));
  }
  scheduler::KvCacheOptions kv_options;
  kv_options.enable_prefix_caching = config.enable_prefix_caching;
  SLUICE_ASSIGN_OR_RETURN(scheduler::KvCacheManager kv,
                          scheduler::KvCacheManager::create(specs, kv_options));
  scheduler::SchedulerConfig sc;
  sc.max_num_batched_tokens = config.max_num_batched_tokens;
  sc.max_num_seqs = config.max_num_seqs;
  sc.max_model_len = config.max_model_len;
  sc.policy = config.scheduling_policy;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Scheduler> sched,
                          scheduler::Scheduler::create(sc, std::move(kv), nullptr));
  std::unique_ptr<Engine> engine(
      new Engine(std::move(config), std::move(sched), std::move(executor)));
  engine->refresh_stats();
  engine->thread_ = std::thread([e = engine.get()] { e->loop(); });
  return engine;
}

Engine::Engine(EngineConfig config, std::unique_ptr<scheduler::Scheduler> scheduler,
               std::unique_ptr<Executor> executor)
    : config_(std::move(config)),
      scheduler_(std::move(scheduler)),
      executor_(std::move(executor)),
      paused_(config_.start_paused) {
  if (config_.seed) seed_stream_.seed(*config_.seed);
}

Engine::~Engine() { stop(); }

RequestId Engine::submit(Request request, std::shared_ptr<OutputSink> sink) {
  std::lock_guard<std::mutex> lock(mu_);
  RequestId id(next_id_++);
  submits_.push_back({id, std::move(request), std::move(sink), Clock::now()});
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
  e.num_computed_tokens = s.num_computed_tokens;
  e.num_prompt_tokens_computed = num_prompt_tokens_computed_;
  e.num_steps = num_steps_;
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = std::move(e);
}

void Engine::reject(const Pending& p, std::vector<Outgoing>& out) const {
  const int32_t num_choices = std::clamp(p.request.n, 1, std::max(config_.max_num_seqs, 1));
  for (int32_t k = 0; k < num_choices; ++k) {
    Delta d;
    d.id = p.id;
    d.choice = k;
    d.finish_reason = scheduler::FinishReason::kAbort;
    out.push_back({p.sink, std::move(d)});
  }
}

void Engine::add(Pending p, std::vector<Outgoing>& out) {
  auto reject_with = [&](const Status& status) {
    SLUICE_LOG_INFO("request {} rejected: {}", p.id.value, status.message());
    reject(p, out);
  };
  const Status valid = sampling::validate(p.request.sampling, model_config().vocab_size);
  if (!valid.is_ok()) return reject_with(valid);
  for (TokenId t : p.request.prompt) {
    if (t < 0 || t >= model_config().vocab_size) {
      return reject_with(Status::invalid_argument(
          fmt::format("prompt token id {} outside [0, {})", t, model_config().vocab_size)));
    }
  }
  const bool prompt_rows = p.request.sampling.prompt_logprobs >= 0 || p.request.debug_logits;
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
  if (prompt_rows) {
    // A namespace no server-derived one can equal (it starts with a NUL byte): no other
    // request's blocks can hit, so every prompt position is computed. Its own blocks may hit
    // after a preemption, but only below positions whose rows were already taken.
    spec.cache_keys.cache_namespace = fmt::format("{}prompt-rows/{}/{}", std::string(1, '\0'),
                                                  p.id.value, p.request.cache_namespace);
  }
  const Status added = scheduler_->add_request(std::move(spec));
  if (!added.is_ok()) return reject_with(added);

  Live live;
  live.sink = std::move(p.sink);
  live.params = std::move(p.request.sampling);
  if (config_.seed && !live.params.seed) live.params.seed = seed_stream_();
  std::vector<int32_t>& stops = live.params.stop_token_ids;
  stops.insert(stops.end(), p.request.stop_token_ids.begin(), p.request.stop_token_ids.end());
  if (!p.request.ignore_eos)
    stops.insert(stops.end(), config_.eos_token_ids.begin(), config_.eos_token_ids.end());
  std::sort(stops.begin(), stops.end());
  stops.erase(std::unique(stops.begin(), stops.end()), stops.end());
  live.prompt = std::move(p.request.prompt);
  live.debug_logits = p.request.debug_logits;
  live.submitted = p.submitted;
  if (live.params.prompt_logprobs >= 0) live.prompt_logprobs.resize(live.num_prompt_rows());
  live_.emplace(p.id, std::move(live));
}

Engine::ChoiceState& Engine::choice_for(Live& live, int32_t choice) {
  ChoiceState& c = live.choices[choice];
  if (c.sampler == nullptr) {
    sampling::SamplingParams params = live.params;
    if (params.seed.has_value()) params.seed = *params.seed + static_cast<uint64_t>(choice);
    c.draw_seed = params.seed.has_value() ? *params.seed : draw_seeds_();
    c.sampler = std::make_unique<sampling::Sampler>(params, live.prompt);
  }
  return c;
}

void Engine::publish(const std::vector<scheduler::SequenceOutput>& outputs,
                     std::vector<Outgoing>& out) {
  for (const scheduler::SequenceOutput& o : outputs) {
    auto it = live_.find(o.request_id);
    if (it == live_.end()) continue;
    Live& live = it->second;
    Delta d;
    d.id = o.request_id;
    d.choice = o.choice_index;
    d.token_ids = o.new_token_ids;
    d.finish_reason = o.finish_reason;
    auto c = live.choices.find(o.choice_index);
    if (!o.new_token_ids.empty() && c != live.choices.end()) {
      ChoiceState& cs = c->second;
      const bool first = !cs.sent_tokens;
      cs.sent_tokens = true;
      if (live.params.logprobs >= 0) {
        SLUICE_CHECK(cs.logprobs.size() == o.new_token_ids.size(),
                     "request {} choice {}: {} logprobs for {} tokens", o.request_id.value,
                     o.choice_index, cs.logprobs.size(), o.new_token_ids.size());
        d.logprobs = std::move(cs.logprobs);
        cs.logprobs.clear();
      }
      if (first && live.params.prompt_logprobs >= 0) {
        SLUICE_CHECK(live.num_prompt_rows_done == live.num_prompt_rows(),
                     "request {}: first token before its prompt logprobs ({} of {})",
                     o.request_id.value, live.num_prompt_rows_done, live.num_prompt_rows());
        if (live.shared_prompt_logprobs == nullptr) {
          live.shared_prompt_logprobs =
              std::make_shared<const std::vector<sampling::SampleLogprobs>>(
                  std::move(live.prompt_logprobs));
          live.prompt_logprobs.clear();
        }
        d.prompt_logprobs = live.shared_prompt_logprobs;
      }
      if (first) {
        d.num_cached_tokens = live.num_cached_tokens;
        d.queue_seconds = live.queue_seconds;
      }
      if (live.debug_logits) {
        if (first) d.debug_logits = live.prompt_debug_logits;
        d.debug_logits.insert(d.debug_logits.end(), cs.debug_logits.begin(), cs.debug_logits.end());
        cs.debug_logits.clear();
      }
    }
    out.push_back({live.sink, std::move(d)});
    if (o.finish_reason.has_value() && c != live.choices.end()) live.choices.erase(c);
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

void Engine::note_first_scheduled(const scheduler::StepPlan& plan) {
  const Clock::time_point now = Clock::now();
  for (const scheduler::ScheduledSequence& s : plan.sequences) {
    auto it = live_.find(s.request_id);
    if (it == live_.end() || it->second.scheduled) continue;
    Live& live = it->second;
    live.scheduled = true;
    // A newly admitted sequence starts right after its prefix-cache hit.
    live.num_cached_tokens = s.start_position;
    live.queue_seconds = std::max(0.0, std::chrono::duration<double>(now - live.submitted).count());
  }
}

void Engine::plan_prompt_rows(const scheduler::StepPlan& plan) {
  extra_rows_.clear();
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const scheduler::ScheduledSequence& s = plan.sequences[i];
    auto it = live_.find(s.request_id);
    if (it == live_.end() || !it->second.wants_prompt_rows()) continue;
    const Live& live = it->second;
    const int32_t done = live.num_prompt_rows_done;
    const int32_t begin = std::max(s.start_position, done);
    const int32_t end = std::min(s.start_position + s.num_new_tokens, live.num_prompt_rows());
    if (begin >= end) continue;
    // Rows are taken in order: a chunk never starts past the first missing position (the
    // private namespace keeps other requests' hits out; see add()).
    SLUICE_CHECK(begin == done, "request {}: prompt rows from {} but {} are done",
                 s.request_id.value, begin, done);
    if (extra_rows_.empty()) extra_rows_.resize(plan.sequences.size());
    extra_rows_[i] = LogitRange{begin, end};
  }
}

void Engine::take_prompt_rows(const scheduler::StepPlan& plan, const StepLogits& logits) {
  for (size_t i = 0; i < extra_rows_.size(); ++i) {
    const LogitRange& r = extra_rows_[i];
    if (r.size() == 0) continue;
    Live& live = live_.at(plan.sequences[i].request_id);
    for (int32_t p = r.begin; p < r.end; ++p) {
      const std::span<const float> row = logits.row(logits.first_extra_row[i] + (p - r.begin));
      if (live.params.prompt_logprobs >= 0) {
        sampling::compute_logprobs(row, live.prompt[p + 1], live.params.prompt_logprobs,
                                   &live.prompt_logprobs[p]);
      }
      if (live.debug_logits) {
        live.prompt_debug_logits.insert(live.prompt_debug_logits.end(), row.begin(), row.end());
      }
    }
    live.num_prompt_rows_done = r.end;
  }
}

void Engine::plan_device_draws(const scheduler::StepPlan& plan) {
  device_draws_.assign(plan.sequences.size(), std::nullopt);
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const scheduler::ScheduledSequence& s = plan.sequences[i];
    if (s.num_samples != 1) continue;
    auto it = live_.find(s.request_id);
    if (it == live_.end()) continue;
    Live& live = it->second;
    const sampling::SamplingParams& p = live.params;
    if (p.logprobs >= 0 || live.debug_logits || p.presence_penalty != 0.0f ||
        p.frequency_penalty != 0.0f || p.repetition_penalty != 1.0f || !p.logit_bias.empty()) {
      continue;
    }
    ChoiceState& c = choice_for(live, s.choice_index);
    const int generated = c.sampler->num_generated();
    if (generated < p.min_tokens && !p.stop_token_ids.empty()) continue;  // stop ids masked
    device_draws_[i] = DeviceDraw{.temperature = p.temperature,
                                  .top_k = p.top_k,
                                  .top_p = p.top_p,
                                  .min_p = p.min_p,
                                  .seed = c.draw_seed,
                                  .step = static_cast<uint64_t>(generated)};
  }
}

void Engine::run_step(const scheduler::StepPlan& plan, std::vector<Outgoing>& out) {
  note_first_scheduled(plan);
  plan_prompt_rows(plan);
  if (executor_->draws_on_device()) {
    plan_device_draws(plan);
    executor_->set_device_draws(device_draws_);
  }
  StatusOr<StepLogits> logits = executor_->execute(plan, extra_rows_);
  if (!logits.is_ok()) return fail_plan(plan, logits.status(), out);
  ++num_steps_;
  take_prompt_rows(plan, *logits);
  scheduler::StepResult result;
  result.sampled_token_ids.resize(plan.sequences.size());
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const scheduler::ScheduledSequence& s = plan.sequences[i];
    auto it = live_.find(s.request_id);
    SLUICE_CHECK(it != live_.end(), "no live request {} for a scheduled sequence",
                 s.request_id.value);
    Live& live = it->second;
    const int32_t num_prompt = static_cast<int32_t>(live.prompt.size());
    num_prompt_tokens_computed_ +=
        std::max(0, std::min(s.start_position + s.num_new_tokens, num_prompt) - s.start_position);
    if (s.num_samples == 0) continue;
    if (!logits->token_of_sequence.empty() && logits->token_of_sequence[i] >= 0) {
      // Drawn on the executor's device: no logits came back for this row.
      const int32_t token = logits->token_of_sequence[i];
      choice_for(live, s.choice_index).sampler->accept(token);
      result.sampled_token_ids[i].push_back(token);
      continue;
    }
    const std::span<const float> row = logits->row(logits->row_of_sequence[i]);
    for (int32_t j = 0; j < s.num_samples; ++j) {
      // n > 1 forks: entry j is choice j; otherwise the sequence's own choice.
      const int32_t choice = s.num_samples > 1 ? j : s.choice_index;
      ChoiceState& c = choice_for(live, choice);
      sampling::SampleLogprobs lp;
      const int32_t token = c.sampler->sample(row, live.params.logprobs >= 0 ? &lp : nullptr);
      c.sampler->accept(token);
      if (live.params.logprobs >= 0) c.logprobs.push_back(std::move(lp));
      if (live.debug_logits) c.debug_logits.insert(c.debug_logits.end(), row.begin(), row.end());
      result.sampled_token_ids[i].push_back(token);
    }
  }
  publish(scheduler_->update(plan, result).outputs, out);
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
        reject(p, out);
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
        run_step(plan, out);
      }
    }
    refresh_stats();
    for (Outgoing& o : out) {
      if (o.sink != nullptr) o.sink->push(std::move(o.delta));
    }
  }
}

}  // namespace sluice::engine
