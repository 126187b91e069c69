#include "server/model_backend.h"

#include <fmt/format.h>

#include "kernels/ops.h"

#if SLUICE_HAVE_CUDA_ENGINE
#include "engine/executor_cuda/cuda_executor.h"
#endif

namespace sluice::server {

bool cuda_backend_built() { return SLUICE_HAVE_CUDA_ENGINE != 0; }

namespace {

StatusOr<Backend> load_cpu(const std::string& path) {
  Backend b;
  b.device = "cpu";
  SLUICE_ASSIGN_OR_RETURN(b.loaded, models::load_model(path, models::LoadOptions{}, kernels::cpu_ops()));
  b.config = b.loaded.model->config();
  return b;
}

#if SLUICE_HAVE_CUDA_ENGINE
StatusOr<Backend> load_cuda(const std::string& path, const BackendOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(models::ModelFiles files, models::open_model_files(path));
  models::cuda::CudaModelOptions co;
  co.max_num_tokens = o.max_num_batched_tokens;
  co.max_num_seqs = o.max_num_seqs;
  co.block_size = o.block_size;
  co.gpu_memory_utilization = o.gpu_memory_utilization;
  SLUICE_ASSIGN_OR_RETURN(auto model, engine::load_cuda_model(files, co));
  SLUICE_ASSIGN_OR_RETURN(auto executor, engine::CudaExecutor::create(std::move(model)));
  Backend b;
  b.device = "cuda";
  b.num_blocks = executor->num_blocks();
  b.executor = std::move(executor);
  b.config = std::move(files.config);
  b.loaded = std::move(files.loaded);
  return b;
}
#endif

}  // namespace

StatusOr<Backend> load_backend(const std::string& path, const BackendOptions& o) {
  if (o.device != "cpu" && o.device != "cuda" && o.device != "auto") {
    return Status::invalid_argument(fmt::format("--device {}: use cpu, cuda or auto", o.device));
  }
  if (o.device == "cpu") return load_cpu(path);
#if SLUICE_HAVE_CUDA_ENGINE
  auto cuda = load_cuda(path, o);
  if (cuda.is_ok() || o.device == "cuda") return cuda;
  // auto: no device, or a model the CUDA models do not run.
  if (cuda.status().code() != StatusCode::kFailedPrecondition &&
      cuda.status().code() != StatusCode::kUnimplemented) {
    return cuda.status();
  }
  return load_cpu(path);
#else
  if (o.device == "cuda") {
    return Status::failed_precondition(
        "--device cuda: this build has no CUDA backend (build with the CUDA toolkit installed)");
  }
  return load_cpu(path);
#endif
}

StatusOr<std::unique_ptr<engine::Engine>> make_engine(Backend& b, const engine::EngineConfig& config) {
  if (b.executor) return engine::Engine::create(std::move(b.executor), b.num_blocks, config);
  return engine::Engine::create(std::move(b.loaded.model), config);
}

}  // namespace sluice::server
