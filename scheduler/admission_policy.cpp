#include "scheduler/admission_policy.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "common/check.h"

namespace sluice::scheduler {

SequenceInfo sequence_info(const SequenceState& seq) {
  const RequestSpec& req = seq.request();
  SequenceInfo info;
  info.seq_id = seq.id();
  info.request_id = req.id;
  info.choice_index = seq.choice_index();
  info.tenant = req.tenant;
  info.priority = req.priority;
  info.weight = req.weight;
  info.arrival = seq.arrival();
  info.num_tokens = seq.num_tokens();
  info.num_prompt_tokens = seq.num_prompt_tokens();
  info.num_computed_tokens = seq.num_computed_tokens;
  info.num_preemptions = seq.num_preemptions;
  return info;
}

size_t AdmissionPolicy::pick_victim(std::span<const SequenceInfo> running) {
  SLUICE_CHECK(!running.empty(), "pick_victim with no running sequence");
  auto key = [](const SequenceInfo& s) {
    return std::make_tuple(s.priority, s.arrival, s.choice_index);
  };
  size_t best = 0;
  for (size_t i = 1; i < running.size(); ++i) {
    if (key(running[i]) > key(running[best])) best = i;
  }
  return best;
}

size_t FcfsPolicy::pick_next(std::span<const SequenceInfo> waiting) {
  SLUICE_CHECK(!waiting.empty(), "pick_next with no waiting sequence");
  return 0;
}

std::unique_ptr<AdmissionPolicy> make_fcfs_policy() { return std::make_unique<FcfsPolicy>(); }

double FairSharePolicy::counter(TenantId tenant) const {
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? 0.0 : it->second.counter;
}

void FairSharePolicy::track(const SequenceInfo& seq) {
  if (!live_.emplace(seq.seq_id, seq.tenant).second) return;
  TenantState& t = tenants_[seq.tenant];
  if (t.num_live++ > 0) return;
  double floor = std::numeric_limits<double>::infinity();
  double largest = 0.0;
  for (const auto& [id, other] : tenants_) {
    if (id == seq.tenant) continue;
    largest = std::max(largest, other.counter);
    if (other.num_live > 0) floor = std::min(floor, other.counter);
  }
  if (floor == std::numeric_limits<double>::infinity()) floor = largest;
  t.counter = std::max(t.counter, floor);
}

size_t FairSharePolicy::pick_next(std::span<const SequenceInfo> waiting) {
  SLUICE_CHECK(!waiting.empty(), "pick_next with no waiting sequence");
  // The first sequence in queue order of the best (priority, counter, live sequences).
  auto key = [&](const SequenceInfo& s) {
    auto it = tenants_.find(s.tenant);
    const double c = it == tenants_.end() ? 0.0 : it->second.counter;
    const int32_t live = it == tenants_.end() ? 0 : it->second.num_live;
    return std::make_tuple(s.priority, c, live);
  };
  size_t best = 0;
  auto best_key = key(waiting[0]);
  for (size_t i = 1; i < waiting.size(); ++i) {
    if (waiting[i].priority > std::get<0>(best_key)) continue;
    auto k = key(waiting[i]);
    if (k < best_key) {
      best = i;
      best_key = k;
    }
  }
  return best;
}

void FairSharePolicy::on_enqueued(const SequenceInfo& seq) { track(seq); }

void FairSharePolicy::on_scheduled(const SequenceInfo& seq, int32_t num_new_tokens,
                                   int32_t num_samples) {
  track(seq);
  const int32_t begin = seq.num_computed_tokens;
  const int32_t prompt_end = std::min(begin + num_new_tokens, seq.num_prompt_tokens);
  const double prompt_positions = std::max(0, prompt_end - begin);
  const double cost = prompt_positions * options_.input_cost + num_samples * options_.output_cost;
  tenants_[seq.tenant].counter += cost / seq.weight;
}

void FairSharePolicy::on_finished(const SequenceInfo& seq) {
  auto it = live_.find(seq.seq_id);
  if (it == live_.end()) return;
  auto t = tenants_.find(it->second);
  if (t != tenants_.end()) --t->second.num_live;
  live_.erase(it);
}

std::string_view scheduling_policy_name(SchedulingPolicy policy) {
  return policy == SchedulingPolicy::kFair ? "fair" : "fcfs";
}

std::optional<SchedulingPolicy> parse_scheduling_policy(std::string_view name) {
  if (name == "fair") return SchedulingPolicy::kFair;
  if (name == "fcfs") return SchedulingPolicy::kFcfs;
  return std::nullopt;
}

std::unique_ptr<AdmissionPolicy> make_policy(SchedulingPolicy policy) {
  if (policy == SchedulingPolicy::kFair) return std::make_unique<FairSharePolicy>();
  return make_fcfs_policy();
}

}  // namespace sluice::scheduler
