#include "engine/models_cuda/cuda_model_base.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "common/check.h"
#include "common/half.h"
#include "common/log.h"
#include "engine/models_cuda/tensor_views.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/qkv_prepare.h"
#include "kernels/cuda/random_fill.h"
#include "kernels/cuda/sampling.h"

namespace sluice::models::cuda {

using kernels::DType;
using kernels::Tensor;
namespace kc = kernels::cuda;

namespace {

// Host values of a bound weight stored as `to` (bf16 or f32), appended to `out` as bytes:
// copied when the dtypes match, else converted through f32 (exact for every source type).
void append_as(const Tensor& t, DType to, std::vector<unsigned char>& out) {
  SLUICE_CHECK(t.dtype != DType::kI32, "integer weight");
  const int64_t n = t.numel();
  const size_t elem = to == DType::kF32 ? 4 : 2;
  const size_t base = out.size();
  out.resize(base + static_cast<size_t>(n) * elem);
  unsigned char* dst = out.data() + base;
  if (t.dtype == to) {
    std::memcpy(dst, t.data, static_cast<size_t>(n) * elem);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float v = t.dtype == DType::kF32    ? t.ptr<float>()[i]
                    : t.dtype == DType::kBF16 ? bf16_to_f32(t.ptr<uint16_t>()[i])
                                              : f16_to_f32(t.ptr<uint16_t>()[i]);
    if (to == DType::kF32) {
      std::memcpy(dst + i * 4, &v, 4);
    } else {
      const uint16_t bits = f32_to_bf16(v);
      std::memcpy(dst + i * 2, &bits, 2);
    }
  }
}

}  // namespace

CudaModelBase::~CudaModelBase() {
  for (auto& [key, exec] : graphs_) {
    if (exec != nullptr)
      SLUICE_CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)));
  }
  for (void* e : profile_events_) SLUICE_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(e)));
  if (stream_ != nullptr) {
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
    SLUICE_CUDA_CHECK(cudaStreamDestroy(static_cast<cudaStream_t>(stream_)));
  }
}

Status CudaModelBase::build(ModelConfig config, const CudaModelOptions& options,
                            WeightBinder* binder, uint64_t seed) {
  SLUICE_RETURN_IF_ERROR(init(std::move(config), options, binder, seed));
  SLUICE_RETURN_IF_ERROR(init_weights());
  SLUICE_RETURN_IF_ERROR(allocate_scratch());
  return allocate_kv();
}

Status CudaModelBase::init(ModelConfig config, const CudaModelOptions& options,
                           WeightBinder* binder, uint64_t seed) {
  if (kc::cuda_device_count() == 0) {
    return Status::failed_precondition(
        "no CUDA device: the CUDA backend needs an NVIDIA GPU and its driver");
  }
  if (options.max_num_tokens < 1 || options.max_num_seqs < 1 || options.block_size < 1 ||
      options.gpu_memory_utilization <= 0.f || options.gpu_memory_utilization > 1.f) {
    return Status::invalid_argument(fmt::format(
        "CUDA model options: max_num_tokens {}, max_num_seqs {}, block_size {} must be >= 1 and "
        "gpu_memory_utilization {} in (0, 1]",
        options.max_num_tokens, options.max_num_seqs, options.block_size,
        options.gpu_memory_utilization));
  }
  // The CUDA attention kernels are built for these head dims (kernels/cuda/paged_attention.h).
  for (size_t i = 0; i < config.layers.size(); ++i) {
    const int d = config.layers[i].head_dim;
    if (d != 64 && d != 128 && d != 256 && d != 512) {
      return Status::unimplemented(fmt::format(
          "the CUDA backend supports head dims 64, 128, 256 and 512; layer {} has head_dim {}", i,
          d));
    }
  }
  config_ = std::move(config);
  options_ = options;
  groups_ = kv_group_layouts(config_);
  layer_group_.assign(config_.num_layers, 0);
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (int l : groups_[g].layers) layer_group_[l] = static_cast<int>(g);
  }
  // A KV-shared layer attends with its source layer's tables (sources come first).
  for (int l = 0; l < config_.num_layers; ++l) {
    const int src = config_.layers[l].kv_source_layer;
    if (src >= 0) layer_group_[l] = layer_group_[src];
  }
  max_table_width_ =
      (config_.max_position_embeddings + options.block_size - 1) / options.block_size;
  if (!options.num_blocks.empty() && options.num_blocks.size() != groups_.size()) {
    return Status::invalid_argument(
        fmt::format("CUDA model options: {} block counts for {} KV groups",
                    options.num_blocks.size(), groups_.size()));
  }
  cudaStream_t stream = nullptr;
  SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
  SLUICE_RETURN_IF_ERROR(kc::init_blas());
  binder_ = binder;
  seed_ = seed;
  tensor_index_ = 0;
  return Status::ok();
}

void CudaModelBase::keep_weight(DeviceMemory mem) {
  weight_bytes_ += mem.bytes();
  weight_memory_.push_back(std::move(mem));
}

StatusOr<Tensor> CudaModelBase::upload_matrix(std::vector<TensorRole> roles, int layer,
                                              std::vector<int64_t> part_rows, int64_t cols,
                                              float range, std::string_view what, DType dtype) {
  int64_t rows = 0;
  for (int64_t r : part_rows) rows += r;
  const size_t elem = dtype == DType::kF32 ? 4 : 2;
  SLUICE_ASSIGN_OR_RETURN(DeviceMemory mem,
                          DeviceMemory::allocate(static_cast<size_t>(rows * cols) * elem, what));
  Tensor t = dev_contig(mem.data(), dtype, {rows, cols});
  if (binder_ != nullptr) {
    std::vector<unsigned char> host;
    for (size_t i = 0; i < roles.size(); ++i) {
      SLUICE_ASSIGN_OR_RETURN(Tensor part, binder_->matrix(roles[i], layer, part_rows[i], cols));
      append_as(part, dtype, host);
    }
    SLUICE_CUDA_CHECK(cudaMemcpy(mem.data(), host.data(), host.size(), cudaMemcpyHostToDevice));
  } else {
    kc::fill_uniform(t, seed_ + tensor_index_++, -range, range, stream_);
  }
  keep_weight(std::move(mem));
  return t;
}

StatusOr<Tensor> CudaModelBase::upload_tensor(TensorRole role, int layer,
                                              std::vector<int64_t> shape, float range,
                                              std::string_view what) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  SLUICE_ASSIGN_OR_RETURN(DeviceMemory mem,
                          DeviceMemory::allocate(static_cast<size_t>(n * 2), what));
  Tensor t;
  t.data = mem.data();
  t.dtype = DType::kBF16;
  t.device = kernels::Device::kCuda;
  t.ndim = static_cast<int>(shape.size());
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.shape[i] = shape[i];
    t.strides[i] = stride;
    stride *= shape[i];
  }
  if (binder_ != nullptr) {
    SLUICE_ASSIGN_OR_RETURN(Tensor host_t, binder_->tensor(role, layer, shape));
    std::vector<unsigned char> host;
    append_as(host_t, DType::kBF16, host);
    SLUICE_CUDA_CHECK(cudaMemcpy(mem.data(), host.data(), host.size(), cudaMemcpyHostToDevice));
  } else {
    // fill_uniform takes a flat view.
    kc::fill_uniform(dev_contig(mem.data(), DType::kBF16, {n}), seed_ + tensor_index_++, -range,
                     range, stream_);
  }
  keep_weight(std::move(mem));
  return t;
}

StatusOr<Tensor> CudaModelBase::upload_vector(TensorRole role, int layer, int64_t n, float lo,
                                              float hi, std::string_view what) {
  SLUICE_ASSIGN_OR_RETURN(DeviceMemory mem,
                          DeviceMemory::allocate(static_cast<size_t>(n * 4), what));
  Tensor t = dev_contig(mem.data(), DType::kF32, {n});
  if (binder_ != nullptr) {
    SLUICE_ASSIGN_OR_RETURN(Tensor v, binder_->vector(role, layer, n));
    SLUICE_CUDA_CHECK(cudaMemcpy(mem.data(), v.data, v.nbytes(), cudaMemcpyHostToDevice));
  } else {
    kc::fill_uniform(t, seed_ + tensor_index_++, lo, hi, stream_);
  }
  keep_weight(std::move(mem));
  return t;
}

StatusOr<Tensor> CudaModelBase::upload_norm(TensorRole role, int layer, int64_t n,
                                            std::string_view what) {
  return config_.norm_one_plus_weight ? upload_vector(role, layer, n, -0.2f, 0.2f, what)
                                      : upload_vector(role, layer, n, 0.8f, 1.2f, what);
}

Status CudaModelBase::upload_dense_layer(int i, std::vector<TensorRole> qkv_roles,
                                         std::vector<int64_t> qkv_rows, bool with_k_norm,
                                         DenseLayer* L) {
  const ModelConfig& c = config_;
  const LayerConfig& lc = c.layers[i];
  const int64_t H = c.hidden_size, nq = c.num_heads, d = lc.head_dim, I = lc.intermediate_size;
  auto fan_in = [](int64_t k) { return std::sqrt(3.0f / static_cast<float>(k)); };
  const std::string what = fmt::format("layer {} weights", i);
  SLUICE_ASSIGN_OR_RETURN(
      L->wqkv, upload_matrix(std::move(qkv_roles), i, std::move(qkv_rows), H, fan_in(H), what));
  SLUICE_ASSIGN_OR_RETURN(
      L->wo, upload_matrix({TensorRole::kOProj}, i, {H}, nq * d, fan_in(nq * d), what));
  SLUICE_ASSIGN_OR_RETURN(L->wgu, upload_matrix({TensorRole::kGateProj, TensorRole::kUpProj}, i,
                                                {I, I}, H, fan_in(H), what));
  SLUICE_ASSIGN_OR_RETURN(L->w_down,
                          upload_matrix({TensorRole::kDownProj}, i, {H}, I, fan_in(I), what));
  SLUICE_ASSIGN_OR_RETURN(L->attn_norm, upload_norm(TensorRole::kAttnNorm, i, H, what));
  SLUICE_ASSIGN_OR_RETURN(L->q_norm, upload_norm(TensorRole::kQNorm, i, d, what));
  if (with_k_norm) {
    SLUICE_ASSIGN_OR_RETURN(L->k_norm, upload_norm(TensorRole::kKNorm, i, d, what));
  }
  SLUICE_ASSIGN_OR_RETURN(L->post_attn_norm, upload_norm(TensorRole::kPostAttnNorm, i, H, what));
  SLUICE_ASSIGN_OR_RETURN(L->ffn_norm, upload_norm(TensorRole::kFfnNorm, i, H, what));
  SLUICE_ASSIGN_OR_RETURN(L->post_ffn_norm, upload_norm(TensorRole::kPostFfnNorm, i, H, what));
  return Status::ok();
}

StatusOr<std::vector<float>> CudaModelBase::read_vector(TensorRole role, int layer, int64_t n,
                                                        float fill) {
  if (binder_ == nullptr) return std::vector<float>(static_cast<size_t>(n), fill);
  SLUICE_ASSIGN_OR_RETURN(Tensor v, binder_->vector(role, layer, n));
  return std::vector<float>(v.ptr<const float>(), v.ptr<const float>() + n);
}

Status CudaModelBase::allocate(DeviceMemory* mem, size_t bytes, std::string_view what) {
  SLUICE_ASSIGN_OR_RETURN(*mem, DeviceMemory::allocate(bytes, what));
  return Status::ok();
}

Status CudaModelBase::allocate_layer_scratch(int64_t qkv_width, int64_t I, int64_t head_dim) {
  const int64_t T = options_.max_num_tokens, H = config_.hidden_size, nq = config_.num_heads;
  auto bytes = [](int64_t n, int64_t elem) { return static_cast<size_t>(n * elem); };
  SLUICE_RETURN_IF_ERROR(allocate(&x_, bytes(T * H, 4), "residual stream"));
  SLUICE_RETURN_IF_ERROR(allocate(&a_, bytes(T * H, 2), "normed activations"));
  SLUICE_RETURN_IF_ERROR(allocate(&qkv_, bytes(T * qkv_width, 2), "QKV projections"));
  SLUICE_RETURN_IF_ERROR(allocate(&attn_, bytes(T * nq * head_dim, 2), "attention output"));
  SLUICE_RETURN_IF_ERROR(allocate(&o_, bytes(T * H, 4), "projection output"));
  SLUICE_RETURN_IF_ERROR(allocate(&gu_, bytes(T * 2 * I, 2), "gate/up projections"));
  return allocate(&act_, bytes(T * I, 2), "GeGLU output");
}

Status CudaModelBase::allocate_step_buffers(int num_q_heads, int max_head_dim) {
  const ModelConfig& c = config_;
  const int64_t T = options_.max_num_tokens, S = options_.max_num_seqs, R = options_.max_num_seqs;
  const int64_t H = c.hidden_size;
  SLUICE_RETURN_IF_ERROR(allocate(&head_in_, static_cast<size_t>(R * H * 2), "normed logit rows"));
  SLUICE_RETURN_IF_ERROR(allocate(&rows_, static_cast<size_t>(R * H * 4), "logit rows"));
  SLUICE_RETURN_IF_ERROR(allocate(&logits_, static_cast<size_t>(R * c.vocab_size * 4), "logits"));
  SLUICE_RETURN_IF_ERROR(allocate(&argmax_, static_cast<size_t>(R * 4), "sampled tokens"));
  SLUICE_CHECK(kc::sampling_workspace_bytes(R, c.vocab_size) == 0,
               "the sampling kernel now needs a workspace: allocate it here");
  const size_t params_bytes = static_cast<size_t>(R) * sizeof(kc::SamplingRowParams);
  SLUICE_ASSIGN_OR_RETURN(sample_params_host_,
                          PinnedMemory::allocate(params_bytes, "sampling parameters (host)"));
  SLUICE_RETURN_IF_ERROR(allocate(&sample_params_dev_, params_bytes, "sampling parameters"));
  // Sized for the longest context a table can address (graph replays launch for that).
  attn_workspace_bytes_ =
      kc::paged_attention_workspace_bytes(static_cast<int>(T), static_cast<int>(S), num_q_heads,
                                          max_head_dim, max_table_width_ * options_.block_size);
  SLUICE_RETURN_IF_ERROR(allocate(&attn_workspace_, attn_workspace_bytes_, "attention workspace"));
  // Integer tables: tokens, positions, token_seq, slots per group [T each]; seq_lens, query
  // start [S + 1]; logit rows [R]; block tables per group [S, max blocks of a sequence].
  const int64_t max_blocks = max_table_width_;
  const int64_t G = static_cast<int64_t>(groups_.size());
  // Logit rows: up to one per token (prompt logprobs); the head runs them R at a time.
  const size_t meta_ints =
      static_cast<size_t>(3 * T + 2 * S + 1 + std::max(R, T) + G * (T + S * max_blocks));
  SLUICE_ASSIGN_OR_RETURN(meta_host_, PinnedMemory::allocate(meta_ints * 4, "step tables (host)"));
  SLUICE_RETURN_IF_ERROR(allocate(&meta_dev_, meta_ints * 4, "step tables"));
  return Status::ok();
}

Status CudaModelBase::allocate_kv() {
  const ModelConfig& c = config_;
  const int bs = options_.block_size;
  // bf16 K and V of one block, for every layer of group g.
  std::vector<uint64_t> block_bytes(groups_.size());
  uint64_t all_groups = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const KvGroupLayout& gl = groups_[g];
    block_bytes[g] = 2ull * 2 * bs * gl.num_kv_heads * gl.head_dim * gl.layers.size();
    all_groups += block_bytes[g];
  }
  num_blocks_ = options_.num_blocks;
  if (num_blocks_.empty()) {
    const DeviceMemoryInfo info = device_memory_info();
    const double used = static_cast<double>(info.total_bytes - info.free_bytes);
    const double budget =
        options_.gpu_memory_utilization * static_cast<double>(info.total_bytes) - used;
    // At least one full-length sequence must fit.
    const int64_t need = (c.max_position_embeddings + bs - 1) / bs;
    const int64_t blocks =
        budget > 0 ? static_cast<int64_t>(budget / static_cast<double>(all_groups)) : 0;
    const int64_t min_blocks = std::min<int64_t>(need, options_.max_num_tokens / bs + 1);
    if (blocks < min_blocks) {
      return Status::resource_exhausted(fmt::format(
          "GPU memory: the model does not fit: its weights take {}, and with its scratch "
          "buffers and whatever else holds the device {} of {} are in use, leaving {} for the "
          "KV cache under gpu_memory_utilization {}; it needs at least {} ({} blocks of {})",
          memory_size(static_cast<double>(weight_bytes_)), memory_size(used),
          memory_size(static_cast<double>(info.total_bytes)), memory_size(std::max(budget, 0.0)),
          options_.gpu_memory_utilization,
          memory_size(static_cast<double>(min_blocks) * static_cast<double>(all_groups)),
          min_blocks, memory_size(static_cast<double>(all_groups))));
    }
    // One block per group stays out of the pool: padded graph rows read it.
    num_blocks_.assign(groups_.size(),
                       static_cast<int>(std::min<int64_t>(blocks - 1, INT32_MAX / bs - 1)));
  }
  pad_block_ = num_blocks_;  // the block after the pool's last
  k_cache_.assign(c.num_layers, Tensor{});
  v_cache_.assign(c.num_layers, Tensor{});
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    if (!lc.owns_kv()) {
      // Sources precede the layers that share them (parse checks the shapes agree).
      k_cache_[li] = k_cache_[lc.kv_source_layer];
      v_cache_[li] = v_cache_[lc.kv_source_layer];
      continue;
    }
    const int g = layer_group_[li];
    const int64_t slots = (static_cast<int64_t>(num_blocks_[g]) + 1) * bs;
    const size_t bytes = static_cast<size_t>(slots) * lc.num_kv_heads * lc.head_dim * 2;
    for (Tensor* t : {&k_cache_[li], &v_cache_[li]}) {
      SLUICE_ASSIGN_OR_RETURN(
          DeviceMemory mem, DeviceMemory::allocate(bytes, fmt::format("KV cache of layer {}", li)));
      SLUICE_CUDA_CHECK(cudaMemsetAsync(mem.data(), 0, bytes, static_cast<cudaStream_t>(stream_)));
      *t = dev_contig(mem.data(), DType::kBF16, {slots, lc.num_kv_heads, lc.head_dim});
      kv_bytes_ += bytes;
      kv_memory_.push_back(std::move(mem));
    }
  }
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  binder_ = nullptr;  // weights are on the device; the binder may go
  return Status::ok();
}

Status CudaModelBase::stage(const ForwardBatch& batch, int pad_to, std::span<const int> widths,
                            StepLayout* L) {
  const ModelConfig& c = config_;
  const int T = static_cast<int>(batch.tokens.size());
  const int S = static_cast<int>(batch.seq_lens.size());
  const int R = static_cast<int>(batch.logit_rows.size());
  SLUICE_RETURN_IF_ERROR(validate_forward_batch(c, batch, num_blocks_, options_.block_size,
                                                static_cast<size_t>(R) * c.vocab_size));
  if (T > options_.max_num_tokens || S > options_.max_num_seqs || R > options_.max_num_tokens) {
    return Status::invalid_argument(fmt::format(
        "step of {} tokens, {} sequences, {} logit rows exceeds the CUDA model's limits ({}, {}, "
        "{})",
        T, S, R, options_.max_num_tokens, options_.max_num_seqs, options_.max_num_tokens));
  }
  for (const KvGroupBatch& gb : batch.groups) {
    if (gb.max_blocks > max_table_width_) {
      return Status::invalid_argument(fmt::format(
          "block tables {} wide; the context length allows {}", gb.max_blocks, max_table_width_));
    }
  }
  // The kernels take each sequence's tokens as one run of rows: check the layout and derive
  // query_start[S + 1].
  std::vector<int32_t> query_start(S + 1, 0);
  int max_query_len = 0, max_seq_len = 0;
  {
    int next_seq = 0;
    for (int t = 0; t < T; ++t) {
      const int32_t s = batch.token_seq[t];
      if (t > 0 && s == batch.token_seq[t - 1]) {
        if (batch.positions[t] != batch.positions[t - 1] + 1) {
          return Status::invalid_argument(fmt::format(
              "token {}: positions of one sequence must be consecutive in the batch ({} after {})",
              t, batch.positions[t], batch.positions[t - 1]));
        }
        continue;
      }
      if (s != next_seq) {
        return Status::invalid_argument(
            fmt::format("token {} belongs to sequence {}; the CUDA backend needs the tokens of "
                        "sequence 0, 1, ... "
                        "as consecutive runs",
                        t, s));
      }
      query_start[s] = t;
      ++next_seq;
    }
    if (next_seq != S) {
      return Status::invalid_argument(
          fmt::format("batch has {} sequences but tokens for {}", S, next_seq));
    }
    query_start[S] = T;
    for (int s = 0; s < S; ++s) {
      max_query_len = std::max(max_query_len, query_start[s + 1] - query_start[s]);
      max_seq_len = std::max(max_seq_len, batch.seq_lens[s]);
    }
  }

  // Padded decode steps (graph replays) add rows B > S: token 0 at position 0 of a one-token
  // sequence whose only block is the reserved pad block; its K/V is not written (slot -1)
  // and its outputs are never read.
  const int B = pad_to > 0 ? pad_to : T;
  const int PS = pad_to > 0 ? pad_to : S;
  const int PR = pad_to > 0 ? pad_to : R;
  L->T = B;
  L->S = PS;
  L->R = PR;
  L->real_rows = R;
  L->max_query_len = max_query_len;
  L->table_width.resize(groups_.size());
  L->max_seq_len.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    L->table_width[g] = widths.empty() ? batch.groups[g].max_blocks : widths[g];
    // A graph is replayed for any context up to its tables' width.
    L->max_seq_len[g] = widths.empty() ? max_seq_len : widths[g] * options_.block_size;
  }

  // Pack the tables into the pinned buffer, then one copy to the device.
  auto* host = static_cast<int32_t*>(meta_host_.data());
  size_t used = 0;
  auto put = [&](std::span<const int32_t> v, int padded_len, int32_t pad_value, bool pad_iota) {
    const size_t at = used;
    std::memcpy(host + used, v.data(), v.size() * 4);
    for (int i = static_cast<int>(v.size()); i < padded_len; ++i)
      host[used + i] = pad_iota ? i : pad_value;
    used += std::max<size_t>(v.size(), padded_len);
    return at;
  };
  L->o_tokens = put(batch.tokens, B, 0, false);
  L->o_pos = put(batch.positions, B, 0, false);
  L->o_seq = put(batch.token_seq, B, 0, true);
  L->o_lens = put(batch.seq_lens, PS, 1, false);
  L->o_qs = put(query_start, pad_to > 0 ? PS + 1 : S + 1, 0, true);
  L->o_rows = put(batch.logit_rows, PR, 0, true);
  L->o_slots.resize(groups_.size());
  L->o_tables.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const KvGroupBatch& gb = batch.groups[g];
    L->o_slots[g] = put(gb.slots, B, -1, false);
    const int width = L->table_width[g];
    L->o_tables[g] = used;
    for (int s = 0; s < PS; ++s) {
      int32_t* row = host + used + static_cast<size_t>(s) * width;
      if (s < S) {
        std::copy_n(gb.block_tables.data() + static_cast<size_t>(s) * gb.max_blocks, gb.max_blocks,
                    row);
        std::fill(row + gb.max_blocks, row + width, -1);
      } else {
        std::fill(row, row + width, pad_block_[g]);
      }
    }
    used += static_cast<size_t>(PS) * width;
  }
  SLUICE_CHECK(used * 4 <= meta_host_.bytes(), "step tables overflow: {} ints", used);
  SLUICE_CUDA_CHECK(cudaMemcpyAsync(meta_dev_.data(), host, used * 4, cudaMemcpyHostToDevice,
                                    static_cast<cudaStream_t>(stream_)));
  return Status::ok();
}

Tensor CudaModelBase::step_ints(size_t offset, int64_t n) const {
  return dev_contig(static_cast<int32_t*>(meta_dev_.data()) + offset, DType::kI32, {n});
}

Tensor CudaModelBase::step_tables(const StepLayout& L, int g) const {
  return dev_contig(static_cast<int32_t*>(meta_dev_.data()) + L.o_tables[g], DType::kI32,
                    {L.S, L.table_width[g]});
}

Tensor CudaModelBase::attn_workspace() const {
  return dev_contig(attn_workspace_.data(), DType::kF32,
                    {static_cast<int64_t>(std::max<size_t>(attn_workspace_bytes_ / 4, 1))});
}

void CudaModelBase::enqueue_head(const StepLayout& L, const Tensor& x, const Tensor& embed,
                                 const Tensor& final_norm) {
  head_x_ = x;
  head_embed_ = embed;
  head_norm_ = final_norm;
  head_rows_offset_ = L.o_rows;
  enqueue_head_rows(0, std::min(L.R, options_.max_num_seqs));
}

void CudaModelBase::enqueue_head_rows(int begin, int R) {
  const ModelConfig& c = config_;
  if (R == 0) return;
  const int64_t H = c.hidden_size;
  void* s = stream_;
  const Tensor rows = dev_contig(rows_.data(), DType::kF32, {R, H});
  kc::gather_rows({rows, head_x_, step_ints(head_rows_offset_ + begin, R)}, s);
  const Tensor y = dev_contig(head_in_.data(), DType::kBF16, {R, H});
  kc::rms_norm({y, rows, head_norm_, c.rms_norm_eps, c.norm_one_plus_weight}, s);
  const Tensor logits = dev_contig(logits_.data(), DType::kF32, {R, c.vocab_size});
  kc::matmul({logits, y, head_embed_}, s);
  if (c.final_logit_softcap > 0) kc::softcap({logits, c.final_logit_softcap}, s);
  kc::argmax({dev_contig(argmax_.data(), DType::kI32, {R}), logits}, s);
}

bool CudaModelBase::is_plain_decode(const ForwardBatch& b) const {
  const size_t S = b.seq_lens.size();
  if (S == 0 || b.tokens.size() != S || b.logit_rows.size() != S) return false;
  for (size_t i = 0; i < S; ++i) {
    if (b.token_seq[i] != static_cast<int32_t>(i) || b.logit_rows[i] != static_cast<int32_t>(i))
      return false;
  }
  return true;
}

Status CudaModelBase::run(const ForwardBatch& batch) {
  auto stream = static_cast<cudaStream_t>(stream_);
  const int S = static_cast<int>(batch.seq_lens.size());
  int bucket = 1;
  while (bucket < S) bucket *= 2;
  bucket = std::min(bucket, options_.max_num_seqs);
  // Scratch holds max_num_tokens rows, so a bucket larger than that launches eagerly.
  if (profiling_ || !options_.use_cuda_graphs || !is_plain_decode(batch) ||
      bucket > options_.max_num_tokens) {
    StepLayout L;
    SLUICE_RETURN_IF_ERROR(stage(batch, 0, {}, &L));
    step_sections_.clear();
    enqueue(L);
    if (profiling_) finish_profiled_step();
    num_logit_rows_ = L.R;
    return Status::ok();
  }
  // Decode: replay the graph of this batch-size bucket and table width (captured on first use).
  std::vector<int> widths(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    int w = 16;
    while (w < batch.groups[g].max_blocks) w *= 2;
    widths[g] = std::min(w, max_table_width_);
  }
  StepLayout L;
  SLUICE_RETURN_IF_ERROR(stage(batch, bucket, widths, &L));
  std::vector<int> key = widths;
  key.push_back(bucket);
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    cudaGraph_t graph = nullptr;
    SLUICE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    enqueue(L);
    SLUICE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
    SLUICE_CUDA_CHECK(cudaGraphDestroy(graph));
    if (instantiated != cudaSuccess) {
      // No device memory left for the graph (the KV pool took what was free): this bucket
      // launches eagerly from now on, slower but correct, instead of failing the step.
      (void)cudaGetLastError();
      exec = nullptr;
      SLUICE_LOG_WARN(
          "CUDA graph for decode batch bucket {} cannot be instantiated ({}); that bucket "
          "launches eagerly (lower --gpu-memory-utilization leaves room for graphs)",
          bucket, cudaGetErrorString(instantiated));
    }
    it = graphs_.emplace(std::move(key), exec).first;
  }
  if (it->second == nullptr) {
    enqueue(L);
    num_logit_rows_ = L.real_rows;
    return Status::ok();
  }
  SLUICE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second), stream));
  num_logit_rows_ = L.real_rows;
  return Status::ok();
}

Status CudaModelBase::forward(const ForwardBatch& batch, std::span<float> logits) {
  if (logits.size() < batch.logit_rows.size() * static_cast<size_t>(config_.vocab_size)) {
    return Status::invalid_argument(fmt::format("logits buffer holds {} floats for {} rows of {}",
                                                logits.size(), batch.logit_rows.size(),
                                                config_.vocab_size));
  }
  SLUICE_RETURN_IF_ERROR(run(batch));
  const int64_t V = config_.vocab_size;
  each_head_chunk([&](int begin, int n) {
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(logits.data() + begin * V, logits_.data(),
                                      static_cast<size_t>(n) * V * 4, cudaMemcpyDeviceToHost,
                                      static_cast<cudaStream_t>(stream_)));
    host_logit_rows_ += n;
  });
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return Status::ok();
}

void CudaModelBase::each_head_chunk(const std::function<void(int begin, int n)>& body) {
  const int cap = options_.max_num_seqs;
  for (int begin = 0; begin < num_logit_rows_; begin += cap) {
    const int n = std::min(cap, num_logit_rows_ - begin);
    if (begin > 0) {
      // The previous chunk's copies read the buffers this chunk overwrites: they are queued
      // first on the same stream; the staging of host inputs waits for them here.
      SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
      enqueue_head_rows(begin, n);
    }
    body(begin, n);
  }
}

Status CudaModelBase::forward_sampled(const ForwardBatch& batch,
                                      std::span<const kc::SamplingRowParams> params,
                                      std::span<int32_t> tokens, std::span<const int32_t> host_rows,
                                      std::span<float> logits) {
  const size_t R = batch.logit_rows.size();
  const int64_t V = config_.vocab_size;
  if (params.size() != R || tokens.size() != R) {
    return Status::invalid_argument(
        fmt::format("forward_sampled: {} sampling parameters and {} token slots for {} logit rows",
                    params.size(), tokens.size(), R));
  }
  if (logits.size() < host_rows.size() * static_cast<size_t>(V)) {
    return Status::invalid_argument(fmt::format("logits buffer holds {} floats for {} rows of {}",
                                                logits.size(), host_rows.size(), V));
  }
  for (size_t k = 0; k < host_rows.size(); ++k) {
    if (host_rows[k] < 0 || static_cast<size_t>(host_rows[k]) >= R ||
        (k > 0 && host_rows[k] <= host_rows[k - 1])) {
      return Status::invalid_argument(
          fmt::format("forward_sampled: host rows must ascend within [0, {}); entry {} is {}", R, k,
                      host_rows[k]));
    }
  }
  SLUICE_RETURN_IF_ERROR(run(batch));
  auto stream = static_cast<cudaStream_t>(stream_);
  size_t next_host = 0;  // host_rows[next_host] is the first not yet copied
  each_head_chunk([&](int begin, int n) {
    std::memcpy(sample_params_host_.data(), params.data() + begin,
                n * sizeof(kc::SamplingRowParams));
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(sample_params_dev_.data(), sample_params_host_.data(),
                                      n * sizeof(kc::SamplingRowParams), cudaMemcpyHostToDevice,
                                      stream));
    kc::SampleArgs a;
    a.logits = dev_contig(logits_.data(), DType::kF32, {n, V});
    a.params = dev_contig(sample_params_dev_.data(), DType::kI32, {n, kc::kSamplingRowParamsWords});
    a.out_tokens = dev_contig(argmax_.data(), DType::kI32, {n});
    kc::sample(a, stream);
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(tokens.data() + begin, argmax_.data(), n * 4,
                                      cudaMemcpyDeviceToHost, stream));
    // This chunk's host rows, one copy per run of consecutive rows.
    while (next_host < host_rows.size() && host_rows[next_host] < begin + n) {
      size_t end = next_host + 1;
      while (end < host_rows.size() && host_rows[end] == host_rows[end - 1] + 1 &&
             host_rows[end] < begin + n) {
        ++end;
      }
      SLUICE_CUDA_CHECK(cudaMemcpyAsync(
          logits.data() + next_host * V,
          static_cast<const float*>(logits_.data()) + (host_rows[next_host] - begin) * V,
          (end - next_host) * V * 4, cudaMemcpyDeviceToHost, stream));
      host_logit_rows_ += static_cast<int64_t>(end - next_host);
      next_host = end;
    }
  });
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return Status::ok();
}

Status CudaModelBase::forward_greedy(const ForwardBatch& batch, std::span<int32_t> tokens) {
  if (tokens.size() != batch.logit_rows.size()) {
    return Status::invalid_argument(fmt::format("token buffer holds {} ids for {} logit rows",
                                                tokens.size(), batch.logit_rows.size()));
  }
  SLUICE_RETURN_IF_ERROR(run(batch));
  each_head_chunk([&](int begin, int n) {
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(tokens.data() + begin, argmax_.data(), n * 4,
                                      cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream_)));
  });
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return Status::ok();
}

Status CudaModelBase::copy_blocks(int group, std::span<const std::pair<int32_t, int32_t>> src_dst) {
  if (group < 0 || group >= num_kv_groups()) {
    return Status::invalid_argument(
        fmt::format("copy_blocks: KV group {} of {}", group, num_kv_groups()));
  }
  const int nb = num_blocks_[group];
  for (const auto& [src, dst] : src_dst) {
    if (src < 0 || src >= nb || dst < 0 || dst >= nb) {
      return Status::invalid_argument(fmt::format(
          "copy_blocks: block {} -> {} out of range: group {} has {} blocks", src, dst, group, nb));
    }
  }
  auto stream = static_cast<cudaStream_t>(stream_);
  const int bs = options_.block_size;
  // Runs of consecutive pairs (src + i -> dst + i) go as one copy per tensor. A run only
  // grows while its source and destination ranges stay disjoint, so every copy is a plain
  // memcpy and the in-order meaning of the pairs holds.
  size_t i = 0;
  while (i < src_dst.size()) {
    const int32_t src = src_dst[i].first, dst = src_dst[i].second;
    int32_t n = 1;
    while (i + n < src_dst.size() && src_dst[i + n].first == src + n &&
           src_dst[i + n].second == dst + n && (src + n < dst || dst + n < src)) {
      ++n;
    }
    i += static_cast<size_t>(n);
    if (src == dst) continue;
    for (int layer : groups_[group].layers) {
      for (const Tensor* cache : {&k_cache_[layer], &v_cache_[layer]}) {
        // [slots, nkv, d] bf16, contiguous: block b is slots [b * bs, (b + 1) * bs).
        const size_t block_bytes = static_cast<size_t>(bs) * cache->strides[0] * 2;
        auto* base = static_cast<char*>(cache->data);
        SLUICE_CUDA_CHECK(cudaMemcpyAsync(base + static_cast<size_t>(dst) * block_bytes,
                                          base + static_cast<size_t>(src) * block_bytes,
                                          static_cast<size_t>(n) * block_bytes,
                                          cudaMemcpyDeviceToDevice, stream));
      }
    }
  }
  return Status::ok();
}

void CudaModelBase::enqueue_attention(const StepLayout& L, const AttentionStep& step,
                                      const Tensor& qkv, const Tensor& attn) {
  namespace kc = kernels::cuda;
  const ModelConfig& c = config_;
  const LayerConfig& lc = c.layers[step.layer];
  const int T = L.T, S = L.S;
  const int64_t nq = c.num_heads, nkv = lc.num_kv_heads, d = lc.head_dim;
  const int64_t w = qkv.shape[1];  // elements per token of the fused projection
  const int g = layer_group_[step.layer];
  const Tensor pos = step_ints(L.o_pos, T);
  auto* base = static_cast<uint16_t*>(qkv.data);
  const RopeConfig& r = lc.rope;

  kc::QkvPrepareArgs prep;
  prep.q = dev_view(base, DType::kBF16, {T, nq, d}, {w, d, 1});
  prep.q_norm = step.q_norm;
  prep.rope = {Tensor{}, pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset, r.freq_dim};
  prep.eps = c.rms_norm_eps;
  prep.one_plus_weight = c.norm_one_plus_weight;
  if (step.has_kv) {
    prep.k = dev_view(base + nq * d, DType::kBF16, {T, nkv, d}, {w, d, 1});
    prep.v = step.k_eq_v ? prep.k
                         : dev_view(base + (nq + nkv) * d, DType::kBF16, {T, nkv, d}, {w, d, 1});
    prep.k_norm = step.k_norm;
    prep.v_norm = step.v_norm;
    prep.k_cache = k_cache_[step.layer];
    prep.v_cache = v_cache_[step.layer];
    prep.slots = step_ints(L.o_slots[g], T);
  }
  kc::qkv_prepare(prep, stream_);

  kc::CudaPagedAttentionArgs pa;
  const int window = lc.type == LayerType::kSliding ? c.sliding_window : 0;
  pa.base = {attn,
             prep.q,
             k_cache_[step.layer],
             v_cache_[step.layer],
             step_ints(L.o_seq, T),
             pos,
             step_tables(L, g),
             step_ints(L.o_lens, S),
             options_.block_size,
             c.attn_scale,
             window,
             c.attn_logit_softcap};
  pa.query_start = step_ints(L.o_qs, S + 1);
  pa.max_query_len = L.max_query_len;
  pa.max_seq_len = L.max_seq_len[g];
  pa.workspace = attn_workspace();
  kc::paged_attention(pa, stream_);
}

void CudaModelBase::enqueue_gate_up(const Tensor& a, const Tensor& wgu, const Tensor& act,
                                    void* gu_scratch) {
  namespace kc = kernels::cuda;
  if (kc::matmul_geglu_applies({act, a, wgu})) {
    kc::matmul_geglu({act, a, wgu}, stream_);
    return;
  }
  const int64_t T = a.shape[0], I = act.shape[1];
  auto* gu = static_cast<uint16_t*>(gu_scratch);
  kc::matmul({dev_contig(gu, DType::kBF16, {T, 2 * I}), a, wgu}, stream_);
  kc::geglu({act, dev_view(gu, DType::kBF16, {T, I}, {2 * I, 1}),
             dev_view(gu + I, DType::kBF16, {T, I}, {2 * I, 1})},
            stream_);
}

void CudaModelBase::set_profiling(bool on) {
  profiling_ = on;
  profile_.clear();
}

void CudaModelBase::section(const char* name) {
  if (!profiling_) return;
  const size_t i = step_sections_.size();
  if (i == profile_events_.size()) {
    cudaEvent_t e = nullptr;
    SLUICE_CUDA_CHECK(cudaEventCreate(&e));
    profile_events_.push_back(e);
  }
  SLUICE_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(profile_events_[i]),
                                    static_cast<cudaStream_t>(stream_)));
  step_sections_.push_back(name);
}

void CudaModelBase::finish_profiled_step() {
  section(nullptr);
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  // This step's time per section (a name may recur, once per layer), then into the totals.
  std::vector<ProfileSection> step;
  for (size_t i = 0; i + 1 < step_sections_.size(); ++i) {
    float ms = 0.0f;
    SLUICE_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(profile_events_[i]),
                                           static_cast<cudaEvent_t>(profile_events_[i + 1])));
    const std::string_view name = step_sections_[i];
    auto it = std::find_if(step.begin(), step.end(),
                           [&](const ProfileSection& p) { return p.name == name; });
    if (it == step.end()) it = step.insert(step.end(), ProfileSection{std::string(name)});
    it->ms += ms;
  }
  for (const ProfileSection& s : step) {
    auto it = std::find_if(profile_.begin(), profile_.end(),
                           [&](const ProfileSection& p) { return p.name == s.name; });
    if (it == profile_.end()) it = profile_.insert(profile_.end(), ProfileSection{s.name});
    it->ms += s.ms;
    ++it->steps;
  }
}

}  // namespace sluice::models::cuda
