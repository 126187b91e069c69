#pragma once
// Loads a model from a path: a GGUF file, or a Hugging Face directory (config.json,
// safetensors single or sharded, optional tokenizer.json / generation_config.json). Returns
// the model, its tokenizer when the files carry one, its chat template text when present,
// and the sampling defaults of generation_config.json. Every problem is one Status line
// naming the file.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/models/model.h"
#include "engine/weights/weight_source.h"
#include "engine/tokenizer/tokenizer.h"

namespace sluice::models {

struct GenerationDefaults {
  std::optional<float> temperature, top_p;
  std::optional<int> top_k;
  std::vector<int32_t> stop_token_ids;  // eos ids of config and generation config (merged)
};

struct LoadedModel {
  std::string path;
  std::string name;  // file base name without extension, or the directory name
  std::unique_ptr<Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null for token-id-only fixtures
  std::optional<std::string> chat_template;          // Jinja text shipped with the model
  GenerationDefaults defaults;
  ParallelConfig parallel;  // the shard that was loaded
};

struct LoadOptions {
  // Keep bf16 weights as bf16 (the CPU matmul reads them directly). Quantized GGUF tensors
  // are dequantized to f32, the reference path.
  bool keep_bf16 = true;
  // The CPU fast path. Keep GGUF quantized matrices (Q4_0 .. Q6_K) as their blocks in the
  // mapped file and run them with the quantized CPU kernels (kernels/cpu/quant_matmul.h:
  // activations rounded to 8 bits per 32-block), and run bf16 matrices with the AVX512_BF16
  // dot product where the CPU has it (kernels/cpu/bf16_matmul.h: activations rounded to
  // bf16); either way logits differ slightly from the reference. Only on the CPU backend.
  // false, or SLUICE_CPU_WEIGHTS=f32 in the environment, gives the reference path: quantized
  // matrices dequantized to f32, bf16 ones multiplied with f32 activations.
  bool keep_quantized = true;
  // The shard this process loads (check_parallel_config: world size 1 only, for now).
  ParallelConfig parallel;
};

StatusOr<LoadedModel> load_model(const std::string& path, const LoadOptions& options,
                                 const kernels::OpTable& ops);

// What load_model reads before it builds a model: everything of LoadedModel but the model,
// the parsed config and the weight source. Other backends (the CUDA models) build their
// model from these.
struct ModelFiles {
  LoadedModel loaded;  // model == nullptr
  ModelConfig config;
  std::shared_ptr<weights::WeightSource> source;
};
StatusOr<ModelFiles> open_model_files(const std::string& path, const ParallelConfig& parallel = {});

}  // namespace sluice::models
