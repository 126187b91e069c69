#pragma once
// CudaModelBase: what every CUDA decoder model (CudaGemma3Model, CudaGemma4Model) shares:
// the device stream, weight upload (from a WeightBinder, or drawn from a seed), the paged
// KV pool (one bf16 K and V buffer per layer that owns its K/V; a KV-shared layer gets its
// source layer's buffers), the step tables (stage), the tied-head tail (final norm, head,
// soft-cap, argmax), and the decode CUDA graphs per batch bucket. A model fills in its
// weights and layer scratch and implements enqueue(): the kernels of one step.
//
// One step = one ForwardBatch, exactly as the CPU models take it (host spans): its integer
// tables are packed into one pinned buffer and copied to the device in one transfer, every
// kernel runs on the model's stream, and only the logits of the requested rows come back
// (or, with forward_greedy, only their argmax token ids).
//
// Threading: one caller at a time (the engine thread); every call blocks until its step is
// done, so the host staging buffer is free again when a call returns.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/models/model.h"
#include "engine/models/paged_kv_cache.h"  // KvGroupLayout
#include "engine/models/weight_binder.h"
#include "engine/models_cuda/device_memory.h"
#include "kernels/cuda/sampling.h"
#include "kernels/tensor.h"

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

class CudaModelBase {
 public:
  virtual ~CudaModelBase();
  CudaModelBase(const CudaModelBase&) = delete;
  CudaModelBase& operator=(const CudaModelBase&) = delete;

  const ModelConfig& config() const { return config_; }
  int block_size() const { return options_.block_size; }
  int num_kv_groups() const { return static_cast<int>(groups_.size()); }
  int num_blocks(int group) const { return num_blocks_[group]; }
  void set_use_cuda_graphs(bool on) { options_.use_cuda_graphs = on; }
  // Decode graphs captured so far.
  int num_graphs() const {
    return static_cast<int>(std::count_if(graphs_.begin(), graphs_.end(),
                                          [](const auto& g) { return g.second != nullptr; }));
  }

  // Step profile, for benchmarks and diagnosis: while on, every step runs eagerly (no graph)
  // and records a CUDA event at each section boundary of enqueue() ("qkv projection",
  // "attention", ...); each step then waits for its end. profile() returns each section's
  // GPU time summed over the steps since profiling was turned on, in first-seen order
  // (set_profiling drops the totals, on or off).
  struct ProfileSection {
    std::string name;
    double ms = 0.0;
    int64_t steps = 0;
  };
  void set_profiling(bool on);
  std::vector<ProfileSection> profile() const { return profile_; }
  uint64_t weight_bytes() const { return weight_bytes_; }
  uint64_t kv_bytes() const { return kv_bytes_; }

  // Runs one step; writes logits [logit_rows, vocab] f32 (soft-capped when the model caps).
  // The batch is validated first (INVALID_ARGUMENT, nothing runs). The tokens of each
  // sequence must be consecutive in the batch, in position order. Blocks until done.
  Status forward(const ForwardBatch& batch, std::span<float> logits);
  // As forward, but returns the argmax token of each logit row (ties: lowest id); only
  // those ids cross to the host.
  Status forward_greedy(const ForwardBatch& batch, std::span<int32_t> tokens);
  // As forward, but draws each logit row's token on the device (kernels/cuda/sampling.h,
  // `params` one per row: greedy rows cost an argmax) into tokens[r]; only the rows named
  // in `host_rows` (ascending) cross to the host: row host_rows[k] into
  // logits[k * vocab, (k + 1) * vocab). Their tokens are drawn too (callers may ignore them).
  Status forward_sampled(const ForwardBatch& batch,
                         std::span<const kernels::cuda::SamplingRowParams> params,
                         std::span<int32_t> tokens, std::span<const int32_t> host_rows,
                         std::span<float> logits);
  // Logit rows copied to the host since load (forward: every row; forward_sampled: the
  // host rows), for tests and metrics.
  int64_t host_logit_rows() const { return host_logit_rows_; }

  // Copies whole KV blocks src -> dst in KV group `group`, every layer of the group, K and V
  // (copy-on-write of forked sequences). INVALID_ARGUMENT for a group or block out of range;
  // queued on the model's stream, finished before the next forward's kernels run.
  // Pairs are applied in order (a later pair sees an earlier pair's destination); nothing is
  // queued unless every pair is valid. Returns without waiting for the copies.
  Status copy_blocks(int group, std::span<const std::pair<int32_t, int32_t>> src_dst);

 protected:
  CudaModelBase() = default;

  // Where one step's integer tables sit in the device table buffer, and the step's (padded)
  // sizes.
  struct StepLayout {
    int T = 0, S = 0, R = 0;  // as launched (padded for graph replays)
    int real_rows = 0;        // logit rows the caller asked for
    int max_query_len = 0;
    std::vector<int> max_seq_len;  // per KV group, as the attention launches see it
    std::vector<int> table_width;  // per KV group
    size_t o_tokens = 0, o_pos = 0, o_seq = 0, o_lens = 0, o_qs = 0, o_rows = 0;
    std::vector<size_t> o_slots, o_tables;
  };

  // Checks `options` and the per-layer head dims against what the CUDA kernels support,
  // keeps the config, derives the KV groups (a KV-shared layer maps to its source's group),
  // creates the stream and the cuBLASLt context. `binder` (may be null: weights drawn from
  // `seed`) must stay alive until the weights are uploaded.
  Status init(ModelConfig config, const CudaModelOptions& options, WeightBinder* binder,
              uint64_t seed);
  // A model's whole construction: init, init_weights, allocate_scratch, allocate_kv.
  Status build(ModelConfig config, const CudaModelOptions& options, WeightBinder* binder,
               uint64_t seed);
  // The model's own steps of build(): its weights, and its scratch (allocate_layer_scratch,
  // allocate_step_buffers and whatever else it needs).
  virtual Status init_weights() = 0;
  virtual Status allocate_scratch() = 0;

  // ---- Weight upload (init() first). Each call allocates one device tensor, fills it from
  // the binder, or (synthetic) draws it on the device from seed + a running tensor index.
  // A bf16 (or f32) matrix [sum(part_rows), cols]: the parts bound for `roles` stacked by
  // rows; synthetic: uniform in +-range.
  StatusOr<kernels::Tensor> upload_matrix(std::vector<TensorRole> roles, int layer,
                                          std::vector<int64_t> part_rows, int64_t cols, float range,
                                          std::string_view what,
                                          kernels::DType dtype = kernels::DType::kBF16);
  // A bf16 tensor of any rank (stacked expert weights [E, rows, cols]); synthetic: +-range.
  StatusOr<kernels::Tensor> upload_tensor(TensorRole role, int layer, std::vector<int64_t> shape,
                                          float range, std::string_view what);
  // An f32 vector [n]; synthetic: uniform in [lo, hi].
  StatusOr<kernels::Tensor> upload_vector(TensorRole role, int layer, int64_t n, float lo, float hi,
                                          std::string_view what);
  // A norm weight [n] f32; synthetic: near 1 as the config's form reads it (w in +-0.2 for
  // 1 + w, w in [0.8, 1.2] for w).
  StatusOr<kernels::Tensor> upload_norm(TensorRole role, int layer, int64_t n,
                                        std::string_view what);
  // The weights every Gemma layer has, as both CUDA models use them.
  struct DenseLayer {
    kernels::Tensor attn_norm, wqkv, wo, q_norm, k_norm, post_attn_norm;  // k_norm: optional
    kernels::Tensor ffn_norm, wgu, w_down, post_ffn_norm;
  };
  // Uploads layer `layer`'s DenseLayer: wqkv stacked from `qkv_roles` ([qkv_rows..., H]),
  // k_norm only when with_k_norm, the MLP of the layer's intermediate size.
  Status upload_dense_layer(int layer, std::vector<TensorRole> qkv_roles,
                            std::vector<int64_t> qkv_rows, bool with_k_norm, DenseLayer* out);
  // A host copy of an f32 vector [n] (e.g. a per-layer scalar); synthetic: `fill` everywhere.
  StatusOr<std::vector<float>> read_vector(TensorRole role, int layer, int64_t n, float fill);
  WeightBinder* binder() const { return binder_; }

  // Allocates one scratch buffer (RESOURCE_EXHAUSTED "GPU memory: ..." naming `what`).
  static Status allocate(DeviceMemory* mem, size_t bytes, std::string_view what);
  // The activation scratch of a Gemma layer for max_num_tokens rows (x_ ... act_ below), for
  // a fused QKV width of at most qkv_width, MLP width I and head dim head_dim.
  Status allocate_layer_scratch(int64_t qkv_width, int64_t I, int64_t head_dim);
  // The buffers every model's step needs: the step tables (host and device), the attention
  // workspace (for `num_q_heads` heads of up to `max_head_dim`), and the head's rows, logits
  // and argmax. Call after the weights, before allocate_kv().
  Status allocate_step_buffers(int num_q_heads, int max_head_dim);
  // The KV pool: sized from options.num_blocks or the memory left (see CudaModelOptions),
  // zeroed, one more block per group kept back for padded graph rows. Fills k_cache_ and
  // v_cache_ for every layer.
  Status allocate_kv();

  // Queues every kernel of the step on stream_, ending with enqueue_head(). Must not
  // allocate, synchronise or read device memory on the host (it is captured into graphs).
  virtual void enqueue(const StepLayout& layout) = 0;

  // ---- For enqueue().
  // n ints of the step tables from `offset` (a StepLayout o_* field), as a device view.
  kernels::Tensor step_ints(size_t offset, int64_t n) const;
  // The block tables [S, width] of KV group g.
  kernels::Tensor step_tables(const StepLayout& layout, int group) const;
  kernels::Tensor attn_workspace() const;
  // Starts profile section `name` (a string literal) where the previous one ends; nullptr
  // ends the last. A no-op unless profiling.
  void section(const char* name);
  // One layer's attention from its fused QKV projection [T, (nq [+ 2 nkv]) d] bf16: the
  // prologue in one launch (kernels/cuda/qkv_prepare.h: QK-norm, RoPE, the optional V-norm
  // and the cache write of layer `layer`'s K/V), then paged attention over the layer's cache
  // into attn [T, nq, d] bf16. With has_kv false (a KV-shared layer) the buffer holds q only
  // and attention reads the source layer's cache; with k_eq_v, v is the raw k.
  struct AttentionStep {
    int layer = 0;
    bool has_kv = true;
    bool k_eq_v = false;
    bool v_norm = false;
    kernels::Tensor q_norm, k_norm;
  };
  void enqueue_attention(const StepLayout& layout, const AttentionStep& step,
                         const kernels::Tensor& qkv, const kernels::Tensor& attn);
  // act [T, I] bf16 = GeGLU of a . wgu^T (wgu [2I, H]: the gate rows, then the up rows): one
  // launch at decode shapes (matmul_geglu), else the projection into `gu_scratch` ([T, 2I]
  // bf16) and geglu.
  void enqueue_gate_up(const kernels::Tensor& a, const kernels::Tensor& wgu,
                       const kernels::Tensor& act, void* gu_scratch);
  // Rows logit_rows of x [T, H] f32 -> rms_norm(final_norm) -> y . embed^T -> soft-cap (when
  // the config caps) -> logits_ [R, V] f32 and argmax_ [R] i32.
  // At most max_num_seqs rows at a time (the logits buffer): the first chunk here, the rest
  // by the forward calls (each_head_chunk), from the tensors this call keeps.
  void enqueue_head(const StepLayout& layout, const kernels::Tensor& x,
                    const kernels::Tensor& embed, const kernels::Tensor& final_norm);

  ModelConfig config_;
  CudaModelOptions options_;
  std::vector<KvGroupLayout> groups_;
  std::vector<int> layer_group_;  // KV group of each layer (of its source when KV-shared)
  int max_table_width_ = 0;       // blocks of a sequence at the full context length
  void* stream_ = nullptr;        // cudaStream_t
  // Per layer: [num_slots, nkv, d] bf16. A KV-shared layer holds its source layer's views.
  std::vector<kernels::Tensor> k_cache_, v_cache_;
  // Layer scratch (allocate_layer_scratch), max_num_tokens rows.
  DeviceMemory x_;     // [T, H] f32 residual stream
  DeviceMemory a_;     // [T, H] bf16 normed activations (GEMM input)
  DeviceMemory qkv_;   // [T, max qkv width] bf16
  DeviceMemory attn_;  // [T, nq, d max] bf16
  DeviceMemory o_;     // [T, H] f32 projection outputs
  DeviceMemory gu_;    // [T, 2 I max] bf16 (prefill steps' gate/up projections)
  DeviceMemory act_;   // [T, I max] bf16
  uint64_t weight_bytes_ = 0;

 private:
  // Validates the batch and copies its tables to the device; with pad_to > 0 the step is
  // padded to pad_to sequences of one token and the block tables to `widths` columns.
  Status stage(const ForwardBatch& batch, int pad_to, std::span<const int> widths,
               StepLayout* layout);
  bool is_plain_decode(const ForwardBatch& batch) const;
  // stage + enqueue (or a graph replay); logits_ and argmax_ hold the result rows.
  Status run(const ForwardBatch& batch);
  // The head for logit rows [begin, begin + n) of the last step into logits_/argmax_ rows
  // [0, n) (n <= max_num_seqs).
  void enqueue_head_rows(int begin, int n);
  // Calls body(begin, n) for each chunk of the step's logit rows (max_num_seqs at a time),
  // logits_/argmax_ then holding that chunk; the first chunk is the one run() computed.
  void each_head_chunk(const std::function<void(int begin, int n)>& body);
  // Keeps `mem` alive as weight storage and counts its bytes.
  void keep_weight(DeviceMemory mem);

  WeightBinder* binder_ = nullptr;  // during upload only
  uint64_t seed_ = 0;
  uint64_t tensor_index_ = 0;
  std::vector<DeviceMemory> weight_memory_;
  std::vector<int> num_blocks_;  // usable blocks per group (the scheduler's pool)
  std::vector<int> pad_block_;   // one more block per group, read by padded graph rows
  uint64_t kv_bytes_ = 0;
  std::vector<DeviceMemory> kv_memory_;
  DeviceMemory head_in_, rows_, logits_, argmax_, attn_workspace_;
  // forward_sampled: the rows' SamplingRowParams (host staging and device copy).
  PinnedMemory sample_params_host_;
  DeviceMemory sample_params_dev_;
  int64_t host_logit_rows_ = 0;
  // What enqueue_head() last ran the head on (enqueue_head_rows runs the other chunks).
  kernels::Tensor head_x_, head_embed_, head_norm_;
  size_t head_rows_offset_ = 0;
  size_t attn_workspace_bytes_ = 0;
  // Integer tables of one step: host staging (pinned) and its device mirror.
  PinnedMemory meta_host_;
  DeviceMemory meta_dev_;
  int num_logit_rows_ = 0;
  // {widths..., bucket} -> cudaGraphExec_t, or nullptr: that bucket launches eagerly (its
  // graph could not be instantiated for lack of device memory).
  std::map<std::vector<int>, void*> graphs_;
  // Profiling: an event per section boundary of a step (reused), the step's section names.
  bool profiling_ = false;
  std::vector<void*> profile_events_;  // cudaEvent_t
  std::vector<const char*> step_sections_;
  std::vector<ProfileSection> profile_;
  void finish_profiled_step();
};

}  // namespace sluice::models::cuda
