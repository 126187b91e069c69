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
                                                    plan.step_id, c.group, model_->num_kv_groups()));
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
  out.logits.resize(builder_.num_logit_rows() * static_cast<size_t>(out.vocab_size));
  SLUICE_RETURN_IF_ERROR(model_->forward(builder_.batch(), out.logits));
  return out;
}

StatusOr<std::unique_ptr<models::cuda::CudaModelBase>> load_cuda_model(
    const models::ModelFiles& files, const models::cuda::CudaModelOptions& options) {
  models::WeightBinder binder(files.source, /*keep_bf16=*/true);
  if (files.config.arch == models::Arch::kGemma4) {
    SLUICE_ASSIGN_OR_RETURN(auto m, models::cuda::CudaGemma4Model::load(files.config, std::move(binder), options));
    return std::unique_ptr<models::cuda::CudaModelBase>(std::move(m));
  }
  SLUICE_ASSIGN_OR_RETURN(auto m, models::cuda::CudaGemma3Model::load(files.config, std::move(binder), options));
  return std::unique_ptr<models::cuda::CudaModelBase>(std::move(m));
}

}  // namespace sluice::engine
