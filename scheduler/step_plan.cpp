#include "scheduler/step_plan.h"

#include "common/check.h"

namespace sluice::scheduler {

ScheduledSequence make_scheduled_sequence(const SequenceState& seq, int32_t start,
                                          int32_t num_new_tokens, int32_t num_samples,
                                          const KvCacheManager& kv) {
  SLUICE_CHECK(start >= 0 && num_new_tokens > 0 && start + num_new_tokens <= seq.num_tokens(),
               "sequence {}: positions [{}, {}) outside its {} tokens", seq.id().value, start,
               start + num_new_tokens, seq.num_tokens());
  ScheduledSequence s;
  s.seq_id = seq.id();
  s.request_id = seq.request_id();
  s.choice_index = seq.choice_index();
  s.start_position = start;
  s.num_new_tokens = num_new_tokens;
  auto ids = seq.tokens().subspan(static_cast<size_t>(start), static_cast<size_t>(num_new_tokens));
  s.token_ids.assign(ids.begin(), ids.end());
  s.num_samples = num_samples;
  s.block_tables = seq.kv.block_tables;
  s.slot_mapping.resize(seq.kv.block_tables.size());
  for (size_t g = 0; g < seq.kv.block_tables.size(); ++g) {
    const int32_t bs = kv.group(static_cast<int32_t>(g)).block_size;
    const auto& table = seq.kv.block_tables[g];
    auto& slots = s.slot_mapping[g];
    slots.reserve(static_cast<size_t>(num_new_tokens));
    for (int32_t pos = start; pos < start + num_new_tokens; ++pos) {
      const size_t j = static_cast<size_t>(pos / bs);
      SLUICE_CHECK(j < table.size() && table[j] != kNullBlockId,
                   "sequence {} group {} has no block for position {}", seq.id().value, g, pos);
      slots.push_back(static_cast<int64_t>(table[j].value) * bs + pos % bs);
    }
  }
  return s;
}

}  // namespace sluice::scheduler
