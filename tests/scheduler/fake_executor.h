#pragma once
// FakeExecutor: stands in for the model in scheduler tests, with a simulated paged KV cache.
//
// Each slot of each KV group stores what a real K/V row depends on: its position and a
// context value chained over every token of the sequence up to it (the way a K/V row depends
// on the whole prefix). Running a plan writes each new token's (position, context) to its
// slot in every group, reading the previous position's context back through the block table.
// Sampling reads every visible position (all of them in a full group, the last W in a
// sliding group) through the block tables and mixes what it finds into the token. So the
// token is a deterministic function of the sequence's tokens when the scheduler's tables,
// slots, copies and prefix hits are right, and anything else either shows up in `errors`
// (a slot holding another position, a null block inside the window) or changes the tokens.

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/kv_cache_manager.h"
#include "scheduler/step_plan.h"

namespace sluice::scheduler::testing {

inline uint64_t mix(uint64_t h, uint64_t v) {
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class FakeExecutor {
 public:
  explicit FakeExecutor(const KvCacheManager& kv, int32_t vocab_size = 50)
      : vocab_size_(vocab_size) {
    for (int32_t g = 0; g < kv.num_groups(); ++g) {
      groups_.push_back(kv.group(g));
      slots_.emplace_back(static_cast<size_t>(kv.group(g).num_blocks) * kv.group(g).block_size);
    }
  }

  StepResult execute(const StepPlan& plan) {
    for (const BlockCopy& c : plan.blocks.copies) {
      const int32_t bs = groups_[c.group].block_size;
      for (int32_t o = 0; o < bs; ++o) {
        slots_[c.group][c.dst.value * bs + o] = slots_[c.group][c.src.value * bs + o];
      }
    }
    StepResult result;
    for (const ScheduledSequence& s : plan.sequences) {
      result.sampled_token_ids.push_back(run(s));
    }
    return result;
  }

  std::vector<std::string> errors;

 private:
  struct Slot {
    int32_t pos = -1;
    uint64_t ctx = 0;
  };

  // The slot of `pos` in group g through the sequence's block table, or null (error logged).
  Slot* slot_of(const ScheduledSequence& s, int32_t g, int32_t pos) {
    const int32_t bs = groups_[g].block_size;
    const auto& table = s.block_tables[g];
    const size_t j = static_cast<size_t>(pos / bs);
    if (j >= table.size() || table[j] == kNullBlockId) {
      errors.push_back(
          fmt::format("seq {} group {}: no block for position {}", s.seq_id.value, g, pos));
      return nullptr;
    }
    return &slots_[g][static_cast<size_t>(table[j].value) * bs + pos % bs];
  }

  // Reads position `pos` in group g and checks it holds that position's data.
  uint64_t read(const ScheduledSequence& s, int32_t g, int32_t pos) {
    Slot* slot = slot_of(s, g, pos);
    if (slot == nullptr) return 0;
    if (slot->pos != pos) {
      errors.push_back(fmt::format("seq {} group {}: position {} reads a slot holding {}",
                                   s.seq_id.value, g, pos, slot->pos));
    }
    return slot->ctx;
  }

  // The first position a query at `pos` attends to in group g.
  int32_t first_visible(size_t g, int32_t pos) const {
    if (groups_[g].kind != KvGroupKind::kSliding) return 0;
    return std::max(0, pos - groups_[g].window + 1);
  }

  std::vector<TokenId> run(const ScheduledSequence& s) {
    uint64_t ctx = 0;
    for (int32_t i = 0; i < s.num_new_tokens; ++i) {
      const int32_t pos = s.start_position + i;
      const uint64_t prev = (pos == 0) ? 0x5eed : read(s, 0, pos - 1);
      ctx = mix(mix(prev, static_cast<uint64_t>(s.token_ids[i])), static_cast<uint64_t>(pos));
      for (size_t g = 0; g < groups_.size(); ++g) {
        // This token's query reads its window: those rows must still be there. (Full groups
        // are read in full when sampling.)
        if (groups_[g].kind == KvGroupKind::kSliding) {
          for (int32_t q = first_visible(g, pos); q < pos; ++q) read(s, static_cast<int32_t>(g), q);
        }
        const int32_t bs = groups_[g].block_size;
        const int64_t slot = s.slot_mapping[g][i];
        const auto& table = s.block_tables[g];
        if (table.at(pos / bs).value != slot / bs || slot % bs != pos % bs) {
          errors.push_back(
              fmt::format("seq {} group {}: slot {} for position {} disagrees with "
                          "the block table",
                          s.seq_id.value, g, slot, pos));
        }
        slots_[g][static_cast<size_t>(slot)] = Slot{pos, ctx};
      }
    }
    std::vector<TokenId> sampled;
    if (s.num_samples == 0) return sampled;
    // "Attention": everything each group may see from the last position.
    const int32_t last = s.start_position + s.num_new_tokens - 1;
    uint64_t h = ctx;
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (int32_t q = first_visible(g, last); q <= last; ++q) {
        const uint64_t seen = read(s, static_cast<int32_t>(g), q);
        if (g > 0 && q >= first_visible(0, last) && seen != read(s, 0, q)) {
          errors.push_back(fmt::format("seq {} group {}: position {} differs from group 0",
                                       s.seq_id.value, g, q));
        }
        h = mix(h, seen);
      }
    }
    for (int32_t k = 0; k < s.num_samples; ++k) {
      sampled.push_back(static_cast<TokenId>(mix(h, static_cast<uint64_t>(k)) % vocab_size_));
    }
    return sampled;
  }

  int32_t vocab_size_;
  std::vector<KvGroupSpec> groups_;
  std::vector<std::vector<Slot>> slots_;  // [group][block * block_size + offset]
};

}  // namespace sluice::scheduler::testing
