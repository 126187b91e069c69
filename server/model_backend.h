#pragma once
// Where `sluice serve` runs its model: `--device cpu|cuda|auto`. The CPU backend is the
// reference models (engine/models) over the host KV cache; the CUDA backend is the CUDA
// models (engine/models_cuda) behind the engine's CudaExecutor, with the KV pool sized on
// the device from --gpu-memory-utilization. `auto` takes CUDA when this build has it and a
// device is visible, else the CPU.

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/models/loader.h"
#include "engine/runtime/engine.h"

namespace sluice::server {

struct BackendOptions {
  std::string device = "auto";  // cpu, cuda or auto
  float gpu_memory_utilization = 0.9f;
  int max_num_seqs = 128;
  int max_num_batched_tokens = 2048;
  int block_size = 16;
};

// A loaded model, ready for the engine: `loaded` carries the tokenizer, chat template,
// defaults and names (and, on the CPU, the model); on CUDA `executor` and `num_blocks` are
// set and loaded.model is null.
struct Backend {
  std::string device;  // "cpu" or "cuda": the one chosen
  models::LoadedModel loaded;
  models::ModelConfig config;
  std::unique_ptr<engine::Executor> executor;
  std::vector<int32_t> num_blocks;
};

// The model at `path` on the device `options` name. Errors are one line: an unknown
// device, `cuda` in a build without CUDA or on a machine without a GPU, a model that does
// not fit or that the CUDA models do not run.
StatusOr<Backend> load_backend(const std::string& path, const BackendOptions& options);

// Builds the engine over the backend (consumes its model or executor).
StatusOr<std::unique_ptr<engine::Engine>> make_engine(Backend& backend, const engine::EngineConfig& config);

// Whether this build has the CUDA backend.
bool cuda_backend_built();

}  // namespace sluice::server
