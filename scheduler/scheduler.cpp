#include "scheduler/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "common/check.h"

namespace sluice::scheduler {
namespace {

void erase_one(std::vector<SequenceState*>& v, const SequenceState* seq) {
  auto it = std::find(v.begin(), v.end(), seq);
  SLUICE_CHECK(it != v.end(), "sequence {} missing from its queue", seq->id().value);
  v.erase(it);
}

}  // namespace

StatusOr<std::unique_ptr<Scheduler>> Scheduler::create(SchedulerConfig config, KvCacheManager kv,
                                                       std::unique_ptr<AdmissionPolicy> policy) {
  if (config.max_num_batched_tokens <= 0) {
    return Status::invalid_argument(fmt::format("--max-num-batched-tokens is {}; it must be > 0",
                                                config.max_num_batched_tokens));
  }
  if (config.max_num_seqs <= 0) {
    return Status::invalid_argument(
        fmt::format("--max-num-seqs is {}; it must be > 0", config.max_num_seqs));
  }
  if (config.max_model_len <= 0) {
    return Status::invalid_argument(
        fmt::format("--max-model-len is {}; it must be > 0", config.max_model_len));
  }
  if (!policy) policy = make_policy(config.policy);
  return std::unique_ptr<Scheduler>(new Scheduler(config, std::move(kv), std::move(policy)));
}

Scheduler::Scheduler(SchedulerConfig config, KvCacheManager kv,
                     std::unique_ptr<AdmissionPolicy> policy)
    : config_(config), kv_(std::move(kv)), policy_(std::move(policy)) {
  pending_delta_.allocated.resize(kv_.num_groups());
  pending_delta_.freed.resize(kv_.num_groups());
}

Status Scheduler::add_request(RequestSpec request) {
  const RequestId id = request.id;
  const int64_t num_prompt = static_cast<int64_t>(request.prompt_token_ids.size());
  if (num_prompt == 0) {
    return Status::invalid_argument(fmt::format("request {}: the prompt is empty", id.value));
  }
  for (TokenId t : request.prompt_token_ids) {
    if (t < 0) {
      return Status::invalid_argument(
          fmt::format("request {}: prompt token id {} is negative", id.value, t));
    }
  }
  if (request.max_tokens < 1) {
    return Status::invalid_argument(
        fmt::format("request {}: max_tokens is {}; it must be >= 1", id.value, request.max_tokens));
  }
  if (request.min_tokens < 0 || request.min_tokens > request.max_tokens) {
    return Status::invalid_argument(
        fmt::format("request {}: min_tokens is {}; it must be in [0, max_tokens = {}]", id.value,
                    request.min_tokens, request.max_tokens));
  }
  if (request.n < 1 || request.n > config_.max_num_seqs) {
    return Status::invalid_argument(
        fmt::format("request {}: n is {}; it must be in [1, --max-num-seqs = {}]", id.value,
                    request.n, config_.max_num_seqs));
  }
  if (!(request.weight > 0.0) || !std::isfinite(request.weight)) {
    return Status::invalid_argument(
        fmt::format("request {}: weight is {}; it must be > 0", id.value, request.weight));
  }
  const int64_t total = num_prompt + request.max_tokens;
  if (total > config_.max_model_len) {
    return Status::invalid_argument(fmt::format(
        "request {}: prompt ({} tokens) + max_tokens ({}) = {} exceeds --max-model-len {}",
        id.value, num_prompt, request.max_tokens, total, config_.max_model_len));
  }
  SLUICE_RETURN_IF_ERROR(kv_.check_fits(static_cast<int32_t>(total), config_.max_num_batched_tokens)
                             .with_context(fmt::format("request {}", id.value)));
  if (requests_.count(id) != 0) {
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("request {} is already queued or running", id.value));
  }

  auto spec = std::make_shared<const RequestSpec>(std::move(request));
  auto seq = std::make_unique<SequenceState>(SequenceId(next_seq_id_++), spec, 0, next_arrival_++);
  RequestEntry& entry = requests_[id];
  entry.live.push_back(seq->id());
  entry.num_unspawned = spec->n - 1;
  SequenceState* s = add_sequence(std::move(seq));
  waiting_.push_back(s);
  policy_->on_enqueued(sequence_info(*s));
  return Status::ok();
}

SequenceState* Scheduler::add_sequence(std::unique_ptr<SequenceState> seq) {
  SequenceState* raw = seq.get();
  sequences_.emplace(raw->id(), std::move(seq));
  return raw;
}

const SequenceState* Scheduler::find(SequenceId id) const {
  auto it = sequences_.find(id);
  return it == sequences_.end() ? nullptr : it->second.get();
}

int32_t Scheduler::seats_of(const SequenceState& seq) {
  return (!seq.forked && seq.request().n > 1) ? seq.request().n : 1;
}

int32_t Scheduler::seats_in_use() const {
  int32_t seats = 0;
  for (const SequenceState* s : running_) seats += seats_of(*s);
  return seats;
}

int32_t Scheduler::num_samples_for(const SequenceState& seq, int32_t end) const {
  if (end < seq.num_tokens()) return 0;
  if (!seq.forked && seq.request().n > 1) return seq.request().n;
  return 1;
}

void Scheduler::preempt(SequenceState* victim, int32_t& budget, std::vector<Scheduled>& scheduled,
                        StepPlan& plan) {
  auto it = std::find_if(scheduled.begin(), scheduled.end(),
                         [victim](const Scheduled& s) { return s.seq == victim; });
  if (it != scheduled.end()) {
    // Already planned this step: give back its tokens; its blocks go with free() below.
    budget += it->num_new_tokens;
    BlockDelta released;  // sliding blocks it let go of stay released
    released.freed = std::move(it->delta.freed);
    pending_delta_.merge(released);
    scheduled.erase(it);
  }
  pending_delta_.merge(kv_.free(*victim));
  victim->num_computed_tokens = 0;
  victim->status = SequenceStatus::kWaiting;
  ++victim->num_preemptions;
  ++num_preemptions_;
  erase_one(running_, victim);
  waiting_.insert(waiting_.begin(), victim);
  plan.preempted.push_back(victim->id());
  policy_->on_enqueued(sequence_info(*victim));
}

void Scheduler::schedule_running(SequenceState* seq, int32_t& budget,
                                 std::vector<Scheduled>& scheduled, StepPlan& plan) {
  const int32_t num_new = std::min(seq->num_tokens() - seq->num_computed_tokens, budget);
  if (num_new <= 0) return;
  while (true) {
    if (auto delta = kv_.allocate_slots(*seq, num_new)) {
      scheduled.push_back(Scheduled{seq, seq->num_computed_tokens, num_new, std::move(*delta)});
      budget -= num_new;
      return;
    }
    std::vector<SequenceInfo> infos;
    infos.reserve(running_.size());
    for (const SequenceState* s : running_) infos.push_back(sequence_info(*s));
    SequenceState* victim = running_[policy_->pick_victim(infos)];
    preempt(victim, budget, scheduled, plan);
    if (victim == seq) return;
  }
}

void Scheduler::admit_waiting(int32_t& budget, std::vector<Scheduled>& scheduled) {
  if (waiting_.empty() || budget <= 0 || seats_in_use() >= config_.max_num_seqs) return;
  std::vector<SequenceInfo> infos;
  infos.reserve(waiting_.size());
  for (const SequenceState* s : waiting_) infos.push_back(sequence_info(*s));
  while (!waiting_.empty() && budget > 0) {
    const size_t idx = policy_->pick_next(infos);
    SLUICE_CHECK(idx < waiting_.size(), "policy {} picked {} of {} waiting", policy_->name(), idx,
                 waiting_.size());
    SequenceState* seq = waiting_[idx];
    if (seats_in_use() + seats_of(*seq) > config_.max_num_seqs) break;
    PrefixHit hit = kv_.find_cached_prefix(*seq);
    const int32_t num_new = std::min(seq->num_tokens() - hit.num_tokens, budget);
    auto delta = kv_.allocate_slots(*seq, num_new, hit);
    if (!delta) break;  // keep the policy's order: nothing jumps ahead of its pick
    seq->num_computed_tokens = hit.num_tokens;
    seq->status = SequenceStatus::kRunning;
    waiting_.erase(waiting_.begin() + static_cast<ptrdiff_t>(idx));
    infos.erase(infos.begin() + static_cast<ptrdiff_t>(idx));
    running_.push_back(seq);
    scheduled.push_back(Scheduled{seq, hit.num_tokens, num_new, std::move(*delta), true});
    budget -= num_new;
    policy_->on_scheduled(sequence_info(*seq), num_new,
                          num_samples_for(*seq, hit.num_tokens + num_new));
  }
}

StepPlan Scheduler::schedule() {
  SLUICE_CHECK(!awaiting_update_, "schedule() called before update() of step {}", last_step_id_);
  StepPlan plan;
  plan.step_id = ++last_step_id_;
  int32_t budget = config_.max_num_batched_tokens;
  std::vector<Scheduled> scheduled;

  // Running sequences: decodes, then continuing prefill (or recompute) chunks. A sequence
  // preempted on the way is no longer kRunning and is skipped.
  const std::vector<SequenceState*> snapshot = running_;
  for (int pass = 0; pass < 2; ++pass) {
    for (SequenceState* seq : snapshot) {
      if (seq->status != SequenceStatus::kRunning || seq->in_prefill() != (pass == 1)) continue;
      schedule_running(seq, budget, scheduled, plan);
    }
  }
  if (plan.preempted.empty()) admit_waiting(budget, scheduled);

  plan.blocks = std::move(pending_delta_);
  pending_delta_ = BlockDelta{};
  pending_delta_.allocated.resize(kv_.num_groups());
  pending_delta_.freed.resize(kv_.num_groups());
  for (const Scheduled& s : scheduled) {
    const int32_t end = s.start + s.num_new_tokens;
    plan.sequences.push_back(make_scheduled_sequence(*s.seq, s.start, s.num_new_tokens,
                                                     num_samples_for(*s.seq, end), kv_));
    plan.num_batched_tokens += s.num_new_tokens;
    plan.blocks.merge(s.delta);
    if (!s.charged) {
      policy_->on_scheduled(sequence_info(*s.seq), s.num_new_tokens,
                            num_samples_for(*s.seq, end));
    }
  }
  SLUICE_CHECK(plan.num_batched_tokens <= config_.max_num_batched_tokens,
               "step {} has {} tokens over the budget {}", plan.step_id, plan.num_batched_tokens,
               config_.max_num_batched_tokens);
  awaiting_update_ = true;
  return plan;
}

SequenceOutput Scheduler::finish(SequenceState* seq, FinishReason reason) {
  SequenceOutput out;
  out.seq_id = seq->id();
  out.request_id = seq->request_id();
  out.choice_index = seq->choice_index();
  out.finish_reason = reason;
  pending_delta_.merge(kv_.free(*seq));
  if (seq->status == SequenceStatus::kRunning) {
    erase_one(running_, seq);
  } else if (seq->status == SequenceStatus::kWaiting) {
    erase_one(waiting_, seq);
  }
  seq->status = SequenceStatus::kFinished;
  policy_->on_finished(sequence_info(*seq));
  auto req = requests_.find(seq->request_id());
  SLUICE_CHECK(req != requests_.end(), "request {} of sequence {} is not tracked",
               seq->request_id().value, seq->id().value);
  auto& live = req->second.live;
  live.erase(std::remove(live.begin(), live.end(), seq->id()), live.end());
  if (live.empty() && req->second.num_unspawned == 0) {
    out.request_finished = true;
    requests_.erase(req);
  }
  sequences_.erase(seq->id());  // `seq` dangles from here on
  return out;
}

StepOutput Scheduler::update(const StepPlan& plan, const StepResult& result) {
  SLUICE_CHECK(awaiting_update_ && plan.step_id == last_step_id_,
               "update() for step {} but the pending step is {}", plan.step_id, last_step_id_);
  SLUICE_CHECK(result.sampled_token_ids.size() == plan.sequences.size(),
               "step {}: {} sampled entries for {} scheduled sequences", plan.step_id,
               result.sampled_token_ids.size(), plan.sequences.size());
  awaiting_update_ = false;
  StepOutput out;
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const ScheduledSequence& entry = plan.sequences[i];
    auto it = sequences_.find(entry.seq_id);
    if (it == sequences_.end()) continue;  // aborted since the plan was made
    SequenceState* seq = it->second.get();
    SLUICE_CHECK(
        seq->status == SequenceStatus::kRunning && seq->num_computed_tokens == entry.start_position,
        "sequence {} changed between schedule() and update()", seq->id().value);
    const auto& sampled = result.sampled_token_ids[i];
    SLUICE_CHECK(static_cast<int32_t>(sampled.size()) == entry.num_samples,
                 "sequence {}: {} tokens sampled, {} expected", seq->id().value, sampled.size(),
                 entry.num_samples);
    seq->num_computed_tokens += entry.num_new_tokens;
    num_computed_tokens_ += entry.num_new_tokens;
    kv_.cache_full_blocks(*seq);
    if (entry.num_samples == 0) continue;

    std::vector<SequenceState*> choices{seq};
    if (entry.num_samples > 1) {
      // The prompt is done: spawn the other choices, sharing its blocks.
      RequestEntry& req = requests_.at(seq->request_id());
      for (int32_t k = 1; k < entry.num_samples; ++k) {
        auto child = std::make_unique<SequenceState>(seq->fork(SequenceId(next_seq_id_++), k));
        kv_.fork(*seq, *child);
        req.live.push_back(child->id());
        SequenceState* c = add_sequence(std::move(child));
        running_.push_back(c);
        choices.push_back(c);
      }
      req.num_unspawned = 0;
      seq->forked = true;
    }
    for (size_t k = 0; k < choices.size(); ++k) {
      SequenceState* s = choices[k];
      const TokenId token = sampled[k];
      s->append_output(token);
      ++num_generation_tokens_;
      SequenceOutput o;
      o.seq_id = s->id();
      o.request_id = s->request_id();
      o.choice_index = s->choice_index();
      o.new_token_ids.push_back(token);
      if (auto reason = check_finish(*s, config_.max_model_len)) {
        SequenceOutput fin = finish(s, *reason);
        o.finish_reason = fin.finish_reason;
        o.request_finished = fin.request_finished;
        if (*reason == FinishReason::kStop) o.stop_token_id = token;
      }
      out.outputs.push_back(std::move(o));
    }
  }
  return out;
}

std::vector<SequenceOutput> Scheduler::abort(RequestId id) {
  std::vector<SequenceOutput> out;
  auto req = requests_.find(id);
  if (req == requests_.end()) return out;
  const int32_t num_unspawned = req->second.num_unspawned;
  const std::vector<SequenceId> live = req->second.live;
  req->second.num_unspawned = 0;
  for (SequenceId sid : live) out.push_back(finish(sequences_.at(sid).get(), FinishReason::kAbort));
  // Choices 1..n-1 of a request whose prompt was not done end too (their seq_id stays 0).
  for (int32_t k = 1; k <= num_unspawned; ++k) {
    SequenceOutput o;
    o.request_id = id;
    o.choice_index = k;
    o.finish_reason = FinishReason::kAbort;
    out.push_back(o);
  }
  for (auto& o : out) o.request_finished = false;
  if (!out.empty()) out.back().request_finished = true;
  requests_.erase(id);
  return out;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_running = num_running();
  s.num_waiting = num_waiting();
  std::unordered_set<RequestId> running_requests;
  for (const SequenceState* seq : running_) running_requests.insert(seq->request_id());
  s.num_running_requests = static_cast<int32_t>(running_requests.size());
  s.num_waiting_requests = static_cast<int32_t>(requests_.size() - running_requests.size());
  s.num_preemptions = num_preemptions_;
  s.num_computed_tokens = num_computed_tokens_;
  s.num_generation_tokens = num_generation_tokens_;
  s.kv = kv_.stats();
  return s;
}

void Scheduler::check_integrity() const {
  kv_.check_integrity();
  std::vector<std::vector<int32_t>> refs(kv_.num_groups());
  for (int32_t g = 0; g < kv_.num_groups(); ++g) refs[g].assign(kv_.pool(g).num_blocks(), 0);
  for (const auto& [id, seq] : sequences_) {
    const bool running = seq->status == SequenceStatus::kRunning;
    SLUICE_CHECK(running || !seq->kv.holds_blocks(), "waiting sequence {} holds blocks", id.value);
    SLUICE_CHECK(running || seq->num_computed_tokens == 0,
                 "waiting sequence {} has {} computed tokens", id.value, seq->num_computed_tokens);
    for (size_t g = 0; g < seq->kv.block_tables.size(); ++g) {
      const auto& table = seq->kv.block_tables[g];
      const int32_t bs = kv_.group(static_cast<int32_t>(g)).block_size;
      SLUICE_CHECK(static_cast<int64_t>(table.size()) * bs >= seq->num_computed_tokens,
                   "sequence {} group {}: {} blocks cannot hold {} computed tokens", id.value, g,
                   table.size(), seq->num_computed_tokens);
      for (BlockId b : table) {
        if (b != kNullBlockId) ++refs[g][b.value];
      }
    }
  }
  for (int32_t g = 0; g < kv_.num_groups(); ++g) {
    for (int32_t b = 0; b < kv_.pool(g).num_blocks(); ++b) {
      const int32_t want = refs[g][b];
      const int32_t got = kv_.pool(g).block(BlockId(b)).ref_count;
      SLUICE_CHECK(want == got, "group {} block {}: ref_count {} but {} table entries hold it", g,
                   b, got, want);
    }
  }
  SLUICE_CHECK(seats_in_use() <= config_.max_num_seqs,
               "{} running (counting unforked choices) over --max-num-seqs {}", seats_in_use(),
               config_.max_num_seqs);
  SLUICE_CHECK(running_.size() + waiting_.size() == sequences_.size(),
               "{} running + {} waiting != {} live sequences", running_.size(), waiting_.size(),
               sequences_.size());
}

}  // namespace sluice::scheduler
