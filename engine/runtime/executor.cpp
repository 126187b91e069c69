#include "engine/runtime/executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace sluice::engine {

std::vector<scheduler::KvGroupSpec> kv_group_specs(const models::ModelConfig& config,
                                                   int32_t block_size,
                                                   const std::vector<int32_t>& num_blocks) {
  const std::vector<models::KvGroupLayout> layouts = models::kv_group_layouts(config);
  std::vector<scheduler::KvGroupSpec> specs;
  for (size_t g = 0; g < layouts.size(); ++g) {
    scheduler::KvGroupSpec spec;
    const bool sliding = layouts[g].type == models::LayerType::kSliding && layouts[g].window > 0;
    spec.kind = sliding ? scheduler::KvGroupKind::kSliding : scheduler::KvGroupKind::kFull;
    spec.window = sliding ? layouts[g].window : 0;
    spec.block_size = block_size;
    spec.num_blocks = g < num_blocks.size() ? num_blocks[g] : 0;
    specs.push_back(spec);
  }
  return specs;
}

StatusOr<std::unique_ptr<CpuExecutor>> CpuExecutor::create(
    std::unique_ptr<models::Model> model, const std::vector<scheduler::KvGroupSpec>& groups,
    const models::ParallelConfig& parallel) {
  if (model == nullptr) return Status::invalid_argument("executor: no model");
  SLUICE_RETURN_IF_ERROR(models::check_parallel_config(parallel));
  const std::vector<models::KvGroupLayout> layouts = models::kv_group_layouts(model->config());
  if (groups.size() != layouts.size()) {
    return Status::invalid_argument(
        fmt::format("executor: {} KV group specs for a model with {} KV groups", groups.size(),
                    layouts.size()));
  }
  std::vector<int> num_blocks;
  for (size_t g = 0; g < groups.size(); ++g) {
    const bool sliding = layouts[g].type == models::LayerType::kSliding && layouts[g].window > 0;
    const bool spec_sliding = groups[g].kind == scheduler::KvGroupKind::kSliding;
    if (sliding != spec_sliding || (sliding && groups[g].window != layouts[g].window)) {
      return Status::invalid_argument(
          fmt::format("executor: KV group {} spec (sliding {}, window {}) does not match the model "
                      "(sliding {}, window {})",
                      g, spec_sliding, groups[g].window, sliding, layouts[g].window));
    }
    if (groups[g].block_size != groups[0].block_size || groups[g].block_size < 1) {
      return Status::invalid_argument(
          fmt::format("executor: KV group {} block_size {} differs from group 0's {}", g,
                      groups[g].block_size, groups[0].block_size));
    }
    if (groups[g].num_blocks < 1) {
      return Status::invalid_argument(
          fmt::format("executor: KV group {} num_blocks {} < 1", g, groups[g].num_blocks));
    }
    num_blocks.push_back(groups[g].num_blocks);
  }
  auto cache =
      std::make_unique<models::PagedKvCache>(model->config(), groups[0].block_size, num_blocks);
  auto executor = std::unique_ptr<CpuExecutor>(new CpuExecutor(std::move(model), std::move(cache)));
  executor->parallel_ = parallel;
  return executor;
}

CpuExecutor::CpuExecutor(std::unique_ptr<models::Model> model,
                         std::unique_ptr<models::PagedKvCache> cache)
    : model_(std::move(model)), cache_(std::move(cache)) {}

Status CpuExecutor::apply_copies(const std::vector<scheduler::BlockCopy>& copies) {
  const int bs = cache_->block_size();
  for (const scheduler::BlockCopy& c : copies) {
    const int num_groups = static_cast<int>(cache_->groups().size());
    if (c.group < 0 || c.group >= num_groups) {
      return Status::invalid_argument(
          fmt::format("block copy: group {} outside [0, {})", c.group, num_groups));
    }
    const int nb = cache_->num_blocks(c.group);
    if (c.src.value < 0 || c.src.value >= nb || c.dst.value < 0 || c.dst.value >= nb) {
      return Status::invalid_argument(
          fmt::format("block copy: block {} -> {} outside [0, {}) in group {}", c.src.value,
                      c.dst.value, nb, c.group));
    }
    const models::KvGroupLayout& g = cache_->groups()[c.group];
    const size_t block_floats = static_cast<size_t>(bs) * g.num_kv_heads * g.head_dim;
    for (int layer : g.layers) {
      for (kernels::Tensor t : {cache_->k(layer), cache_->v(layer)}) {
        float* base = t.ptr<float>();
        std::memcpy(base + block_floats * c.dst.value, base + block_floats * c.src.value,
                    block_floats * sizeof(float));
      }
    }
  }
  return Status::ok();
}

Status StepBatchBuilder::build(const scheduler::StepPlan& plan, std::span<const LogitRange> extra,
                               size_t num_groups, StepLogits* out) {
  const size_t S = plan.sequences.size();
  if (!extra.empty() && extra.size() != S) {
    return Status::invalid_argument(fmt::format("step {}: {} extra logit ranges for {} sequences",
                                                plan.step_id, extra.size(), S));
  }
  out->row_of_sequence.assign(S, -1);
  out->first_extra_row.assign(S, -1);
  tokens_.clear();
  positions_.clear();
  token_seq_.clear();
  seq_lens_.clear();
  logit_rows_.clear();
  slots_.assign(num_groups, {});
  block_tables_.assign(num_groups, {});
  std::vector<int> max_blocks(num_groups, 1);
  for (const scheduler::ScheduledSequence& s : plan.sequences) {
    if (s.block_tables.size() != num_groups || s.slot_mapping.size() != num_groups) {
      return Status::invalid_argument(
          fmt::format("step {}: sequence has {} block tables for {} KV groups", plan.step_id,
                      s.block_tables.size(), num_groups));
    }
    for (size_t g = 0; g < num_groups; ++g) {
      max_blocks[g] = std::max<int>(max_blocks[g], static_cast<int>(s.block_tables[g].size()));
    }
  }
  for (size_t i = 0; i < S; ++i) {
    const scheduler::ScheduledSequence& s = plan.sequences[i];
    if (s.num_new_tokens < 1 || s.token_ids.size() != static_cast<size_t>(s.num_new_tokens)) {
      return Status::invalid_argument(
          fmt::format("step {}: sequence with {} new tokens and {} token ids", plan.step_id,
                      s.num_new_tokens, s.token_ids.size()));
    }
    const int32_t first_token = static_cast<int32_t>(tokens_.size());
    for (int32_t t = 0; t < s.num_new_tokens; ++t) {
      tokens_.push_back(s.token_ids[t]);
      positions_.push_back(s.start_position + t);
      token_seq_.push_back(static_cast<int32_t>(i));
    }
    seq_lens_.push_back(s.start_position + s.num_new_tokens);
    if (!extra.empty() && extra[i].size() > 0) {
      const LogitRange& r = extra[i];
      if (r.begin < s.start_position || r.end > s.start_position + s.num_new_tokens) {
        return Status::invalid_argument(fmt::format(
            "step {}: extra logit positions [{}, {}) outside the new tokens [{}, {})", plan.step_id,
            r.begin, r.end, s.start_position, s.start_position + s.num_new_tokens));
      }
      out->first_extra_row[i] = static_cast<int32_t>(logit_rows_.size());
      for (int32_t p = r.begin; p < r.end; ++p) {
        logit_rows_.push_back(first_token + (p - s.start_position));
      }
    }
    if (s.num_samples > 0) {
      out->row_of_sequence[i] = static_cast<int32_t>(logit_rows_.size());
      logit_rows_.push_back(static_cast<int32_t>(tokens_.size()) - 1);
    }
    for (size_t g = 0; g < num_groups; ++g) {
      if (s.slot_mapping[g].size() != static_cast<size_t>(s.num_new_tokens)) {
        return Status::invalid_argument(
            fmt::format("step {}: group {} has {} slots for {} new tokens", plan.step_id, g,
                        s.slot_mapping[g].size(), s.num_new_tokens));
      }
      for (int64_t slot : s.slot_mapping[g]) {
        if (slot < -1 || slot > INT32_MAX) {
          return Status::invalid_argument(
              fmt::format("step {}: slot {} outside int32", plan.step_id, slot));
        }
        slots_[g].push_back(static_cast<int32_t>(slot));
      }
      for (BlockId b : s.block_tables[g]) block_tables_[g].push_back(b.value);
      block_tables_[g].insert(block_tables_[g].end(), max_blocks[g] - s.block_tables[g].size(), -1);
    }
  }

  batch_ = models::ForwardBatch{};
  batch_.tokens = tokens_;
  batch_.positions = positions_;
  batch_.token_seq = token_seq_;
  batch_.seq_lens = seq_lens_;
  batch_.logit_rows = logit_rows_;
  for (size_t g = 0; g < num_groups; ++g) {
    batch_.groups.push_back({slots_[g], block_tables_[g], max_blocks[g]});
  }
  return Status::ok();
}

StatusOr<StepLogits> CpuExecutor::execute(const scheduler::StepPlan& plan,
                                          std::span<const LogitRange> extra) {
  const size_t S = plan.sequences.size();
  if (!extra.empty() && extra.size() != S) {
    return Status::invalid_argument(fmt::format("step {}: {} extra logit ranges for {} sequences",
                                                plan.step_id, extra.size(), S));
  }
  SLUICE_RETURN_IF_ERROR(apply_copies(plan.blocks.copies));
  StepLogits out;
  out.vocab_size = model_->config().vocab_size;
  out.row_of_sequence.assign(S, -1);
  out.first_extra_row.assign(S, -1);
  if (S == 0) return out;
  SLUICE_RETURN_IF_ERROR(builder_.build(plan, extra, cache_->groups().size(), &out));
  out.logits.resize(builder_.num_logit_rows() * static_cast<size_t>(out.vocab_size));
  SLUICE_RETURN_IF_ERROR(model_->forward(builder_.batch(), *cache_, out.logits));
  return out;
}

}  // namespace sluice::engine
