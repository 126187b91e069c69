#include "scheduler/sequence.h"

#include <algorithm>

#include "common/check.h"

namespace sluice::scheduler {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
  }
  return "unknown";
}

bool KvState::holds_blocks() const {
  for (const auto& table : block_tables) {
    if (!table.empty()) return true;
  }
  return false;
}

SequenceState::SequenceState(SequenceId id, std::shared_ptr<const RequestSpec> request,
                             int32_t choice_index, uint64_t arrival)
    : id_(id),
      request_(std::move(request)),
      choice_index_(choice_index),
      arrival_(arrival),
      num_prompt_tokens_(static_cast<int32_t>(request_->prompt_token_ids.size())),
      tokens_(request_->prompt_token_ids) {
  SLUICE_CHECK(num_prompt_tokens_ > 0, "request {} has an empty prompt", request_->id.value);
}

std::span<const TokenId> SequenceState::output_token_ids() const {
  return std::span<const TokenId>(tokens_).subspan(static_cast<size_t>(num_prompt_tokens_));
}

SequenceState SequenceState::fork(SequenceId child_id, int32_t child_choice_index) const {
  SequenceState child(child_id, request_, child_choice_index, arrival_);
  child.tokens_ = tokens_;
  child.status = status;
  child.num_computed_tokens = num_computed_tokens;
  child.forked = true;  // a child never spawns further choices
  return child;
}

std::optional<FinishReason> check_finish(const SequenceState& seq, int32_t max_model_len) {
  const RequestSpec& req = seq.request();
  const int32_t num_output = seq.num_output_tokens();
  if (num_output > 0 && num_output >= req.min_tokens) {
    const TokenId last = seq.tokens().back();
    auto contains = [last](const std::vector<TokenId>& ids) {
      return std::find(ids.begin(), ids.end(), last) != ids.end();
    };
    if (contains(req.stop_token_ids)) return FinishReason::kStop;
    if (!req.ignore_eos && contains(req.eos_token_ids)) return FinishReason::kStop;
  }
  if (num_output >= req.max_tokens || seq.num_tokens() >= max_model_len) {
    return FinishReason::kLength;
  }
  return std::nullopt;
}

}  // namespace sluice::scheduler
