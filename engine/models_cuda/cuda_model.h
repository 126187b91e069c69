#pragma once
// CudaGemma3Model: the Gemma 3 forward pass (engine/models/gemma3.cpp is the CPU twin) on one
// NVIDIA GPU. Weights live on the device in bf16, uploaded once; the residual stream is f32,
// GEMM inputs bf16 with f32 accumulation; the paged KV cache is bf16 and owned here (one
// buffer per layer, the KV groups of kv_group_layouts()).
//
// One step = one ForwardBatch, exactly as the CPU model takes it (host spans): its integer
// tables are packed into one pinned buffer and copied to the device in one transfer, every
// kernel runs on the model's stream, and only the logits of the requested rows come back
// (or, with forward_greedy, only their argmax token ids).
//
// Data flow of one layer (T tokens, d head dim, I intermediate):
//   x f32 [T,H] -> rms_norm -> a bf16 -> a.Wqkv^T -> qkv bf16 [T,(nq+2nkv)d] -> QK-norm, RoPE
//   (in place) -> cache_write K,V -> paged attention -> attn bf16 [T,nq,d] -> attn.Wo^T -> o f32
//   -> x += norm(o); a = norm(x) (one fused pass) -> a.Wgu^T -> gu bf16 [T,2I] -> GeGLU -> act
//   bf16 [T,I] -> act.Wdown^T -> o f32 -> x += norm(o); a = norm(x) for the next layer.

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "engine/models/model.h"
#include "engine/models/weight_binder.h"
#include "engine/models_cuda/device_memory.h"

namespace sluice::models::cuda {

struct CudaModelOptions {
  int max_num_tokens = 2048;  // tokens of one step (prefill chunk + decodes)
  int max_num_seqs = 256;     // sequences of one step
  int block_size = 16;
  // KV blocks per group. Empty: sized from the free memory left after the weights and every
  // scratch buffer are allocated, up to gpu_memory_utilization of the device's memory.
  std::vector<int> num_blocks;
  float gpu_memory_utilization = 0.9f;
  // Pure decode steps (one token per sequence, every row sampled) replay a CUDA graph per
  // batch-size bucket (1, 2, 4, ... up to max_num_seqs) and block-table width, captured on
  // first use; other steps launch eagerly.
  bool use_cuda_graphs = true;
};

class CudaGemma3Model {
 public:
  // Uploads every tensor `binder` binds (shapes checked against `config`), allocates scratch
  // for the options' largest step and the KV pool. RESOURCE_EXHAUSTED names what did not fit.
  static StatusOr<std::unique_ptr<CudaGemma3Model>> load(ModelConfig config, WeightBinder binder,
                                                         const CudaModelOptions& options);
  // A model of `config`'s shapes whose weights are drawn on the device from `seed`
  // (kernels/cuda/random_fill.h: matrices uniform in +-sqrt(3 / fan_in), embeddings +-0.1,
  // norm weights +-0.2), for benchmarks at any size without a checkpoint.
  static StatusOr<std::unique_ptr<CudaGemma3Model>> synthetic(ModelConfig config, uint64_t seed,
                                                              const CudaModelOptions& options);
  ~CudaGemma3Model();
  CudaGemma3Model(const CudaGemma3Model&) = delete;
  CudaGemma3Model& operator=(const CudaGemma3Model&) = delete;

  const ModelConfig& config() const { return config_; }
  int block_size() const { return options_.block_size; }
  int num_kv_groups() const { return static_cast<int>(groups_.size()); }
  int num_blocks(int group) const { return num_blocks_[group]; }
  void set_use_cuda_graphs(bool on) { options_.use_cuda_graphs = on; }
  // Decode graphs captured so far.
  int num_graphs() const { return static_cast<int>(graphs_.size()); }
  uint64_t weight_bytes() const { return weight_bytes_; }
  uint64_t kv_bytes() const { return kv_bytes_; }

  // Runs one step; writes logits [logit_rows, vocab] f32 (soft-capped when the model caps).
  // The batch is validated first (INVALID_ARGUMENT, nothing runs). The tokens of each
  // sequence must be consecutive in the batch, in position order. Blocks until done.
  Status forward(const ForwardBatch& batch, std::span<float> logits);
  // As forward, but returns the argmax token of each logit row (ties: lowest id); only
  // those ids cross to the host.
  Status forward_greedy(const ForwardBatch& batch, std::span<int32_t> tokens);

 private:
  struct Layer {
    kernels::Tensor attn_norm, wqkv, wo, q_norm, k_norm, post_attn_norm;
    kernels::Tensor ffn_norm, wgu, w_down, post_ffn_norm;
    kernels::Tensor k_cache, v_cache;
  };
  CudaGemma3Model() = default;
  static StatusOr<std::unique_ptr<CudaGemma3Model>> create(ModelConfig config, WeightBinder* binder,
                                                           uint64_t seed, const CudaModelOptions& options);
  // From `binder` when given, else drawn from `seed`.
  Status init_weights(WeightBinder* binder, uint64_t seed);
  Status allocate_scratch();
  Status allocate_kv();

  // Where one step's integer tables sit in meta_dev_, and the step's (padded) sizes.
  struct StepLayout {
    int T = 0, S = 0, R = 0;  // as launched (padded for graph replays)
    int real_rows = 0;        // logit rows the caller asked for
    int max_query_len = 0;
    std::vector<int> max_seq_len;  // per KV group, as the attention launches see it
    std::vector<int> table_width;  // per KV group
    size_t o_tokens = 0, o_pos = 0, o_seq = 0, o_lens = 0, o_qs = 0, o_rows = 0;
    std::vector<size_t> o_slots, o_tables;
  };
  // Validates the batch and copies its tables to the device; with pad_to > 0 the step is
  // padded to pad_to sequences of one token and the block tables to `widths` columns.
  Status stage(const ForwardBatch& batch, int pad_to, std::span<const int> widths, StepLayout* layout);
  // Queues every kernel of the step on stream_: layers, final norm, head, argmax.
  void enqueue(const StepLayout& layout);
  bool is_plain_decode(const ForwardBatch& batch) const;
  // stage + enqueue (or a graph replay); logits_ and argmax_ hold the result rows.
  Status run(const ForwardBatch& batch);

  ModelConfig config_;
  CudaModelOptions options_;
  std::vector<KvGroupLayout> groups_;
  std::vector<int> layer_group_;  // KV group of each layer
  std::vector<int> num_blocks_;   // usable blocks per group (the scheduler's pool)
  std::vector<int> pad_block_;    // one more block per group, read by padded graph rows
  int max_table_width_ = 0;       // blocks of a sequence at the full context length
  void* stream_ = nullptr;  // cudaStream_t

  std::vector<DeviceMemory> weight_memory_;
  uint64_t weight_bytes_ = 0;
  uint64_t kv_bytes_ = 0;
  kernels::Tensor embed_, final_norm_;
  std::vector<Layer> layers_;
  std::vector<DeviceMemory> kv_memory_;

  // Scratch, sized for max_num_tokens (logits for max_num_seqs rows).
  DeviceMemory x_, a_, qkv_, attn_, o_, gu_, act_, rows_, logits_, argmax_, attn_workspace_;
  size_t attn_workspace_bytes_ = 0;
  // Integer tables of one step: host staging (pinned) and its device mirror.
  PinnedMemory meta_host_;
  DeviceMemory meta_dev_;
  int num_logit_rows_ = 0;
  std::map<std::vector<int>, void*> graphs_;  // {widths..., bucket} -> cudaGraphExec_t
};

}  // namespace sluice::models::cuda
