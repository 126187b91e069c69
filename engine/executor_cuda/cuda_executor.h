#pragma once
// CudaExecutor: the engine's Executor on one NVIDIA GPU. It owns a CUDA model (Gemma 3 or
// Gemma 4, engine/models_cuda) whose KV pool lives on the device; the engine's scheduler
// manages that pool's blocks (num_blocks() per KV group, sized by the model from the free
// memory or given in the options). One execute() = the plan's block copies (copy-on-write
// of forked sequences, device to device) and one forward pass over the batch that
// StepBatchBuilder lays out exactly as the CPU executor does; only the logit rows the step
// needs cross to the host.

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/models/loader.h"
#include "engine/models_cuda/cuda_model_base.h"
#include "engine/runtime/executor.h"

namespace sluice::engine {

class CudaExecutor final : public Executor {
 public:
  // `model` with block_size() equal to the engine's block size.
  static StatusOr<std::unique_ptr<CudaExecutor>> create(
      std::unique_ptr<models::cuda::CudaModelBase> model);

  StatusOr<StepLogits> execute(const scheduler::StepPlan& plan,
                               std::span<const LogitRange> extra = {}) override;
  const models::ModelConfig& config() const override { return model_->config(); }
  // Tokens are drawn by the sampling kernel; only rows that need logits cross to the host.
  bool draws_on_device() const override { return true; }
  void set_device_draws(std::span<const std::optional<DeviceDraw>> draws) override {
    draws_.assign(draws.begin(), draws.end());
  }

  // Blocks per KV group of the device pool: what Engine::create(executor, num_blocks, ...)
  // takes.
  std::vector<int32_t> num_blocks() const;
  models::cuda::CudaModelBase& model() { return *model_; }

 private:
  explicit CudaExecutor(std::unique_ptr<models::cuda::CudaModelBase> model)
      : model_(std::move(model)) {}

  std::unique_ptr<models::cuda::CudaModelBase> model_;
  StepBatchBuilder builder_;
  std::vector<std::pair<int32_t, int32_t>> copies_;
  std::vector<std::optional<DeviceDraw>> draws_;  // for the next execute()
  std::vector<kernels::cuda::SamplingRowParams> row_params_;
  std::vector<int32_t> row_tokens_, host_rows_, compact_row_;
  std::vector<char> drawn_;  // [logit row] drawn on the device this step
};

// Builds the CUDA model for files that open_model_files() read: Gemma 3 or Gemma 4 by the
// config, bf16 weights uploaded once. UNIMPLEMENTED for what the CUDA models do not run;
// FAILED_PRECONDITION without a device; RESOURCE_EXHAUSTED when it does not fit.
StatusOr<std::unique_ptr<models::cuda::CudaModelBase>> load_cuda_model(
    const models::ModelFiles& files, const models::cuda::CudaModelOptions& options);

}  // namespace sluice::engine
