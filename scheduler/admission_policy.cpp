#include "scheduler/admission_policy.h"

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

}  // namespace sluice::scheduler
