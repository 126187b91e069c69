#include "engine/executor_cuda/cuda_executor.h"

#include <fmt/format.h>

#include "engine/models/weight_binder.h"
#include "engine/models_cuda/cuda_gemma4.h"
#include "engine/models_cuda/cuda_model.h"

namespace sluice::engine {

StatusOr<std::unique_ptr<CudaExecutor>> CudaExecutor::create(
    std::unique_ptr<models::cuda::CudaModelBase> model) {
  if (model == nullptr) return Status::invalid_argument("CUDA executor: no model");
  return std::unique_ptr<CudaExecutor>(new CudaExecutor(std::move(model)));
}

std::vector<int32_t> CudaExecutor::num_blocks() const {
  std::vector<int32_t> out;
  for (int g = 0; g < model_->num_kv_groups(); ++g) out.push_back(model_->num_blocks(g));
  return out;
}

StatusOr<StepLogits> CudaExecutor::execute(const scheduler::StepPlan& plan,
                                           std::span<const LogitRange> extra) {
  // Copies in plan order, grouped per KV group (copy_blocks checks every block first).
  for (int g = 0; g < model_->num_kv_groups(); ++g) {
    copies_.clear();
    for (const scheduler::BlockCopy& c : plan.blocks.copies) {
      if (c.group < 0 || c.group >= model_->num_kv_groups()) {
        return Status::invalid_argument(fmt::format("step {}: block copy in KV group {} of {}",
                                                    plan.step_id, c.group,
                                                    model_->num_kv_groups()));
      }
      if (c.group == g) copies_.emplace_back(c.src.value, c.dst.value);
    }
    if (!copies_.empty()) SLUICE_RETURN_IF_ERROR(model_->copy_blocks(g, copies_));
  }
  StepLogits out;
  out.vocab_size = model_->config().vocab_size;
  out.row_of_sequence.assign(plan.sequences.size(), -1);
  out.first_extra_row.assign(plan.sequences.size(), -1);
  if (plan.sequences.empty()) return out;
  SLUICE_RETURN_IF_ERROR(
      builder_.build(plan, extra, static_cast<size_t>(model_->num_kv_groups()), &out));
  const size_t R = builder_.num_logit_rows();
  const size_t V = static_cast<size_t>(out.vocab_size);
  std::vector<std::optional<DeviceDraw>> draws = std::move(draws_);
  draws_.clear();
  bool any_draw = false;
  if (!draws.empty()) {
    if (draws.size() != plan.sequences.size()) {
      return Status::invalid_argument(fmt::format("step {}: {} device draws for {} sequences",
                                                  plan.step_id, draws.size(),
                                                  plan.sequences.size()));
    }
    for (const auto& d : draws) any_draw |= d.has_value();
  }
  if (!any_draw) {
    out.logits.resize(R * V);
    SLUICE_RETURN_IF_ERROR(model_->forward(builder_.batch(), out.logits));
    return out;
  }
  // Rows the executor draws from: a sequence's sampling row with a draw and nothing else
  // reading it; every other row (extra rows, rows sampled on the host) crosses to the host,
  // compacted in row order, and is renumbered in `out`.
  drawn_.assign(R, 0);
  row_params_.assign(R, kernels::cuda::SamplingRowParams{.temperature = 0.0f});
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const int32_t r = out.row_of_sequence[i];
    if (r < 0 || !draws[i].has_value()) continue;
    const DeviceDraw& d = *draws[i];
    kernels::cuda::SamplingRowParams& p = row_params_[r];
    p.temperature = d.temperature;
    p.top_k = d.top_k;
    p.top_p = d.top_p;
    p.min_p = d.min_p;
    p.seed = d.seed;
    p.step = d.step;
    drawn_[r] = 1;
  }
  for (size_t i = 0; i < plan.sequences.size(); ++i) {  // an extra row is never drawn from
    const int32_t first = out.first_extra_row[i];
    const int32_t n = extra.empty() ? 0 : extra[i].size();
    for (int32_t k = 0; first >= 0 && k < n; ++k) drawn_[first + k] = 0;
  }
  host_rows_.clear();
  compact_row_.assign(R, -1);
  for (size_t r = 0; r < R; ++r) {
    if (drawn_[r]) continue;
    compact_row_[r] = static_cast<int32_t>(host_rows_.size());
    host_rows_.push_back(static_cast<int32_t>(r));
  }
  row_tokens_.assign(R, -1);
  out.logits.resize(host_rows_.size() * V);
  SLUICE_RETURN_IF_ERROR(
      model_->forward_sampled(builder_.batch(), row_params_, row_tokens_, host_rows_, out.logits));
  out.token_of_sequence.assign(plan.sequences.size(), -1);
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    int32_t& r = out.row_of_sequence[i];
    if (r >= 0 && drawn_[r]) {
      out.token_of_sequence[i] = row_tokens_[r];
      r = -1;
    } else if (r >= 0) {
      r = compact_row_[r];
    }
    if (out.first_extra_row[i] >= 0) out.first_extra_row[i] = compact_row_[out.first_extra_row[i]];
  }
  return out;
}

StatusOr<std::unique_ptr<models::cuda::CudaModelBase>> load_cuda_model(
    const models::ModelFiles& files, const models::cuda::CudaModelOptions& options) {
  models::WeightBinder binder(files.source, /*keep_bf16=*/true);
  if (files.config.arch == models::Arch::kGemma4) {
    SLUICE_ASSIGN_OR_RETURN(
        auto m, models::cuda::CudaGemma4Model::load(files.config, std::move(binder), options));
    return std::unique_ptr<models::cuda::CudaModelBase>(std::move(m));
  }
  SLUICE_ASSIGN_OR_RETURN(
      auto m, models::cuda::CudaGemma3Model::load(files.config, std::move(binder), options));
  return std::unique_ptr<models::cuda::CudaModelBase>(std::move(m));
}

}  // namespace sluice::engine
