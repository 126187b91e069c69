#pragma once
// Request and sequence state as the scheduler sees them.
//
// RequestSpec is what the engine hands over at submit (converted from engine::Request): the
// prompt ids, the stopping rules, n, and the tenancy fields the admission policy reads. It
// is immutable and shared by the request's choices. SequenceState is one choice in flight:
// prompt + output ids, how many positions have K/V in the cache, its status, and its KV
// state (block tables per group), which only KvCacheManager changes. The Scheduler owns
// every SequenceState; StepPlan entries name them by SequenceId.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/ids.h"  // RequestId, BlockId, TokenId, StrongId
#include "scheduler/block_hash.h"

namespace sluice::scheduler {

// NOTE: TenantId belongs in common/ids.h next to RequestId; it lives here until it moves.
struct TenantIdTag {};
using TenantId = StrongId<TenantIdTag, uint32_t>;

// One choice of one request; unique for the scheduler's lifetime.
struct SequenceIdTag {};
using SequenceId = StrongId<SequenceIdTag, uint64_t>;

struct RequestSpec {
  RequestId id;
  std::vector<TokenId> prompt_token_ids;  // non-empty
  int32_t max_tokens = 16;                // >= 1: output tokens per choice
  int32_t min_tokens = 0;                 // no stop / eos finish before this many outputs
  std::vector<TokenId> stop_token_ids;    // finish with kStop (even with ignore_eos)
  std::vector<TokenId> eos_token_ids;     // finish with kStop unless ignore_eos
  bool ignore_eos = false;
  int32_t n = 1;  // choices; the prompt is computed once and forked (blocks shared)
  // Tenancy, read by the AdmissionPolicy.
  TenantId tenant;
  int32_t priority = 0;  // lower runs first; strict between classes
  double weight = 1.0;   // the tenant's fair-share weight at submission (> 0)
  CacheKeys cache_keys;  // prefix-cache namespace and adapter id
};

enum class SequenceStatus : uint8_t { kWaiting, kRunning, kFinished };
enum class FinishReason : uint8_t { kStop, kLength, kAbort };
std::string_view finish_reason_name(FinishReason reason);  // "stop", "length", "abort"

// Per-sequence KV bookkeeping, indexed by KV group. Changed only by KvCacheManager.
struct KvState {
  // [group][block index] -> block; kNullBlockId where a sliding group released a block.
  std::vector<std::vector<BlockId>> block_tables;
  // [group][block index] -> hash of the full block (a cache of the token chain's hashes).
  std::vector<std::vector<BlockHash>> block_hashes;
  // [group] leading blocks already offered to the prefix cache.
  std::vector<int32_t> num_cached_blocks;

  bool holds_blocks() const;
};

class SequenceState {
 public:
  SequenceState(SequenceId id, std::shared_ptr<const RequestSpec> request, int32_t choice_index,
                uint64_t arrival);

  SequenceId id() const { return id_; }
  RequestId request_id() const { return request_->id; }
  int32_t choice_index() const { return choice_index_; }
  const RequestSpec& request() const { return *request_; }
  const std::shared_ptr<const RequestSpec>& request_ptr() const { return request_; }
  // Order of arrival (the scheduler's counter); forked choices keep their parent's.
  uint64_t arrival() const { return arrival_; }
  const CacheKeys& cache_keys() const { return request_->cache_keys; }

  // Prompt ids followed by output ids.
  std::span<const TokenId> tokens() const { return tokens_; }
  std::span<const TokenId> output_token_ids() const;
  int32_t num_tokens() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }
  void append_output(TokenId token) { tokens_.push_back(token); }

  // True while positions [num_computed_tokens, num_tokens - 1) are still to be computed, i.e.
  // the next step is (part of) a prefill or a recompute rather than a single decode token.
  bool in_prefill() const { return num_computed_tokens + 1 < num_tokens(); }

  // A new choice of the same request with the same tokens and progress, and no KV state
  // (KvCacheManager::fork shares the blocks).
  SequenceState fork(SequenceId child_id, int32_t child_choice_index) const;

  SequenceStatus status = SequenceStatus::kWaiting;
  int32_t num_computed_tokens = 0;  // leading positions whose K/V are in the cache
  int32_t num_preemptions = 0;
  bool forked = false;  // the request's other choices have been spawned from this one
  KvState kv;

 private:
  SequenceId id_;
  std::shared_ptr<const RequestSpec> request_;
  int32_t choice_index_;
  uint64_t arrival_;
  int32_t num_prompt_tokens_;
  std::vector<TokenId> tokens_;
};

// After a token was appended to `seq`: kStop when it is a stop token, or an EOS token and
// !ignore_eos (neither before min_tokens outputs); else kLength at max_tokens outputs or
// max_model_len tokens in all; else nullopt (keep going).
std::optional<FinishReason> check_finish(const SequenceState& seq, int32_t max_model_len);

}  // namespace sluice::scheduler
