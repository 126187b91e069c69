#include "engine/models_cuda/cuda_model.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "common/half.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/random_fill.h"

namespace sluice::models::cuda {

using kernels::Device;
using kernels::DType;
using kernels::Tensor;
namespace kc = kernels::cuda;

namespace {

constexpr double kGiB = 1073741824.0;

// A view of device memory with explicit strides (elements).
Tensor dev_view(void* data, DType dtype, std::initializer_list<int64_t> shape,
                std::initializer_list<int64_t> strides) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = Device::kCuda;
  t.ndim = static_cast<int>(shape.size());
  std::copy(shape.begin(), shape.end(), t.shape.begin());
  std::copy(strides.begin(), strides.end(), t.strides.begin());
  return t;
}

Tensor dev_contig(void* data, DType dtype, std::initializer_list<int64_t> shape) {
  return Tensor::make(data, dtype, shape, Device::kCuda);
}

// Host values of a bound weight as bf16 bits, appended to `out`.
void append_bf16(const Tensor& t, std::vector<uint16_t>& out) {
  const int64_t n = t.numel();
  const size_t base = out.size();
  out.resize(base + n);
  switch (t.dtype) {
    case DType::kBF16:
      std::memcpy(out.data() + base, t.data, n * 2);
      break;
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) out[base + i] = f32_to_bf16(t.ptr<float>()[i]);
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[base + i] = f32_to_bf16(f16_to_f32(t.ptr<uint16_t>()[i]));
      break;
    case DType::kI32:
      SLUICE_CHECK(false, "integer weight");
  }
}

}  // namespace

CudaGemma3Model::~CudaGemma3Model() {
  for (auto& [key, exec] : graphs_) SLUICE_CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)));
  if (stream_ != nullptr) {
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
    SLUICE_CUDA_CHECK(cudaStreamDestroy(static_cast<cudaStream_t>(stream_)));
  }
}

StatusOr<std::unique_ptr<CudaGemma3Model>> CudaGemma3Model::load(ModelConfig config, WeightBinder binder,
                                                                 const CudaModelOptions& options) {
  return create(std::move(config), &binder, 0, options);
}

StatusOr<std::unique_ptr<CudaGemma3Model>> CudaGemma3Model::synthetic(ModelConfig config, uint64_t seed,
                                                                      const CudaModelOptions& options) {
  return create(std::move(config), nullptr, seed, options);
}

StatusOr<std::unique_ptr<CudaGemma3Model>> CudaGemma3Model::create(ModelConfig config, WeightBinder* binder,
                                                                   uint64_t seed,
                                                                   const CudaModelOptions& options) {
  if (config.arch != Arch::kGemma3) {
    return Status::unimplemented(fmt::format("the CUDA backend runs Gemma 3 models; this is {}",
                                             arch_name(config.arch)));
  }
  if (kc::cuda_device_count() == 0) {
    return Status::failed_precondition("no CUDA device: the CUDA backend needs an NVIDIA GPU and its driver");
  }
  if (options.max_num_tokens < 1 || options.max_num_seqs < 1 || options.block_size < 1 ||
      options.gpu_memory_utilization <= 0.f || options.gpu_memory_utilization > 1.f) {
    return Status::invalid_argument(fmt::format(
        "CUDA model options: max_num_tokens {}, max_num_seqs {}, block_size {} must be >= 1 and "
        "gpu_memory_utilization {} in (0, 1]",
        options.max_num_tokens, options.max_num_seqs, options.block_size, options.gpu_memory_utilization));
  }
  // The CUDA attention kernels are built for these head dims (kernels/cuda/paged_attention.h).
  for (size_t i = 0; i < config.layers.size(); ++i) {
    const int d = config.layers[i].head_dim;
    if (d != 64 && d != 128 && d != 256 && d != 512) {
      return Status::unimplemented(fmt::format(
          "the CUDA backend supports head dims 64, 128, 256 and 512; layer {} has head_dim {}", i, d));
    }
  }
  std::unique_ptr<CudaGemma3Model> m(new CudaGemma3Model());
  m->config_ = std::move(config);
  m->options_ = options;
  m->groups_ = kv_group_layouts(m->config_);
  m->layer_group_.assign(m->config_.num_layers, 0);
  for (size_t g = 0; g < m->groups_.size(); ++g) {
    for (int l : m->groups_[g].layers) m->layer_group_[l] = static_cast<int>(g);
  }
  m->max_table_width_ =
      (m->config_.max_position_embeddings + options.block_size - 1) / options.block_size;
  if (!options.num_blocks.empty() && options.num_blocks.size() != m->groups_.size()) {
    return Status::invalid_argument(fmt::format("CUDA model options: {} block counts for {} KV groups",
                                                options.num_blocks.size(), m->groups_.size()));
  }
  cudaStream_t stream = nullptr;
  SLUICE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  m->stream_ = stream;
  kc::init_blas();
  SLUICE_RETURN_IF_ERROR(m->init_weights(binder, seed));
  SLUICE_RETURN_IF_ERROR(m->allocate_scratch());
  SLUICE_RETURN_IF_ERROR(m->allocate_kv());
  return m;
}

Status CudaGemma3Model::init_weights(WeightBinder* b, uint64_t seed) {
  ModelConfig& c = config_;
  const int64_t H = c.hidden_size, V = c.vocab_size, nq = c.num_heads;
  uint64_t tensor_index = 0;

  // A bf16 matrix [rows, cols]: `parts` (host tensors bound by the binder) stacked by rows
  // and converted, or drawn uniform in +-range.
  auto matrix = [&](std::vector<TensorRole> roles, int layer, std::vector<int64_t> part_rows, int64_t cols,
                    float range, std::string_view what) -> StatusOr<Tensor> {
    int64_t rows = 0;
    for (int64_t r : part_rows) rows += r;
    SLUICE_ASSIGN_OR_RETURN(DeviceMemory mem, DeviceMemory::allocate(static_cast<size_t>(rows * cols * 2), what));
    Tensor t = dev_contig(mem.data(), DType::kBF16, {rows, cols});
    if (b != nullptr) {
      std::vector<uint16_t> host;
      for (size_t i = 0; i < roles.size(); ++i) {
        SLUICE_ASSIGN_OR_RETURN(Tensor part, b->matrix(roles[i], layer, part_rows[i], cols));
        append_bf16(part, host);
      }
      SLUICE_CUDA_CHECK(cudaMemcpy(mem.data(), host.data(), host.size() * 2, cudaMemcpyHostToDevice));
    } else {
      kc::fill_uniform(t, seed + tensor_index++, -range, range, stream_);
    }
    weight_bytes_ += mem.bytes();
    weight_memory_.push_back(std::move(mem));
    return t;
  };
  auto vector = [&](TensorRole role, int layer, int64_t n, std::string_view what) -> StatusOr<Tensor> {
    SLUICE_ASSIGN_OR_RETURN(DeviceMemory mem, DeviceMemory::allocate(static_cast<size_t>(n * 4), what));
    Tensor t = dev_contig(mem.data(), DType::kF32, {n});
    if (b != nullptr) {
      SLUICE_ASSIGN_OR_RETURN(Tensor v, b->vector(role, layer, n));
      SLUICE_CUDA_CHECK(cudaMemcpy(mem.data(), v.data, v.nbytes(), cudaMemcpyHostToDevice));
    } else {
      kc::fill_uniform(t, seed + tensor_index++, -0.2f, 0.2f, stream_);
    }
    weight_bytes_ += mem.bytes();
    weight_memory_.push_back(std::move(mem));
    return t;
  };
  auto fan_in = [](int64_t k) { return std::sqrt(3.0f / static_cast<float>(k)); };

  SLUICE_ASSIGN_OR_RETURN(embed_, matrix({TensorRole::kTokenEmbedding}, -1, {V}, H, 0.1f, "token embeddings"));
  SLUICE_ASSIGN_OR_RETURN(final_norm_, vector(TensorRole::kFinalNorm, -1, H, "final norm"));
  layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerConfig& lc = c.layers[i];
    const int64_t d = lc.head_dim, nkv = lc.num_kv_heads, I = lc.intermediate_size;
    Layer& L = layers_[i];
    const std::string what = fmt::format("layer {} weights", i);
    SLUICE_ASSIGN_OR_RETURN(L.wqkv, matrix({TensorRole::kQProj, TensorRole::kKProj, TensorRole::kVProj}, i,
                                           {nq * d, nkv * d, nkv * d}, H, fan_in(H), what));
    SLUICE_ASSIGN_OR_RETURN(L.wo, matrix({TensorRole::kOProj}, i, {H}, nq * d, fan_in(nq * d), what));
    SLUICE_ASSIGN_OR_RETURN(L.wgu, matrix({TensorRole::kGateProj, TensorRole::kUpProj}, i, {I, I}, H, fan_in(H), what));
    SLUICE_ASSIGN_OR_RETURN(L.w_down, matrix({TensorRole::kDownProj}, i, {H}, I, fan_in(I), what));
    SLUICE_ASSIGN_OR_RETURN(L.attn_norm, vector(TensorRole::kAttnNorm, i, H, what));
    SLUICE_ASSIGN_OR_RETURN(L.q_norm, vector(TensorRole::kQNorm, i, d, what));
    SLUICE_ASSIGN_OR_RETURN(L.k_norm, vector(TensorRole::kKNorm, i, d, what));
    SLUICE_ASSIGN_OR_RETURN(L.post_attn_norm, vector(TensorRole::kPostAttnNorm, i, H, what));
    SLUICE_ASSIGN_OR_RETURN(L.ffn_norm, vector(TensorRole::kFfnNorm, i, H, what));
    SLUICE_ASSIGN_OR_RETURN(L.post_ffn_norm, vector(TensorRole::kPostFfnNorm, i, H, what));
  }
  // As on the CPU: HF rounds sqrt(H) to the embedding's stored dtype (docs/numerics.md).
  c.embed_scale = b != nullptr ? b->embedding_scale(c.hidden_size)
                               : bf16_to_f32(f32_to_bf16(std::sqrt(static_cast<float>(c.hidden_size))));
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return Status::ok();
}

Status CudaGemma3Model::allocate_scratch() {
  const ModelConfig& c = config_;
  const int64_t T = options_.max_num_tokens, S = options_.max_num_seqs, R = options_.max_num_seqs;
  const int64_t H = c.hidden_size, nq = c.num_heads;
  int64_t qkv_w = 0, I = 0, dmax = 0;
  for (const LayerConfig& l : c.layers) {
    qkv_w = std::max<int64_t>(qkv_w, (nq + 2 * l.num_kv_heads) * l.head_dim);
    I = std::max<int64_t>(I, l.intermediate_size);
    dmax = std::max<int64_t>(dmax, l.head_dim);
  }
  struct {
    DeviceMemory* mem;
    size_t bytes;
    const char* what;
  } buffers[] = {
      {&x_, static_cast<size_t>(T * H * 4), "residual stream"},
      {&a_, static_cast<size_t>(T * H * 2), "normed activations"},
      {&qkv_, static_cast<size_t>(T * qkv_w * 2), "QKV projections"},
      {&attn_, static_cast<size_t>(T * nq * dmax * 2), "attention output"},
      {&o_, static_cast<size_t>(T * H * 4), "projection output"},
      {&gu_, static_cast<size_t>(T * 2 * I * 2), "gate/up projections"},
      {&act_, static_cast<size_t>(T * I * 2), "GeGLU output"},
      {&rows_, static_cast<size_t>(R * H * 4), "logit rows"},
      {&logits_, static_cast<size_t>(R * c.vocab_size * 4), "logits"},
      {&argmax_, static_cast<size_t>(R * 4), "sampled tokens"},
  };
  for (auto& b : buffers) {
    SLUICE_ASSIGN_OR_RETURN(*b.mem, DeviceMemory::allocate(b.bytes, b.what));
  }
  // Sized for the longest context a table can address (graph replays launch for that).
  attn_workspace_bytes_ = kc::paged_attention_workspace_bytes(static_cast<int>(T), static_cast<int>(S),
                                                              static_cast<int>(nq), static_cast<int>(dmax),
                                                              max_table_width_ * options_.block_size);
  SLUICE_ASSIGN_OR_RETURN(attn_workspace_, DeviceMemory::allocate(attn_workspace_bytes_, "attention workspace"));
  // Integer tables: tokens, positions, token_seq, slots per group [T each]; seq_lens, query
  // start [S + 1]; logit rows [R]; block tables per group [S, max blocks of a sequence].
  const int64_t max_blocks = max_table_width_;
  const int64_t G = static_cast<int64_t>(groups_.size());
  const size_t meta_ints = static_cast<size_t>(3 * T + 2 * S + 1 + R + G * (T + S * max_blocks));
  SLUICE_ASSIGN_OR_RETURN(meta_host_, PinnedMemory::allocate(meta_ints * 4, "step tables (host)"));
  SLUICE_ASSIGN_OR_RETURN(meta_dev_, DeviceMemory::allocate(meta_ints * 4, "step tables"));
  return Status::ok();
}

Status CudaGemma3Model::allocate_kv() {
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
    const double budget = options_.gpu_memory_utilization * static_cast<double>(info.total_bytes) - used;
    // At least one full-length sequence must fit.
    const int64_t need = (c.max_position_embeddings + bs - 1) / bs;
    const int64_t blocks = budget > 0 ? static_cast<int64_t>(budget / static_cast<double>(all_groups)) : 0;
    if (blocks < std::min<int64_t>(need, options_.max_num_tokens / bs + 1)) {
      return Status::resource_exhausted(fmt::format(
          "GPU memory: the model does not fit: weights take {:.2f} GiB and scratch {:.2f} GiB; "
          "{:.2f} GiB of {:.2f} GiB are in use, leaving {:.2f} GiB for the KV cache under "
          "gpu_memory_utilization {} (one block of every layer takes {} bytes)",
          weight_bytes_ / kGiB, (used - weight_bytes_) / kGiB, used / kGiB, info.total_bytes / kGiB,
          std::max(budget, 0.0) / kGiB, options_.gpu_memory_utilization, all_groups));
    }
    // One block per group stays out of the pool: padded graph rows read it.
    num_blocks_.assign(groups_.size(), static_cast<int>(std::min<int64_t>(blocks - 1, INT32_MAX / bs - 1)));
  }
  pad_block_ = num_blocks_;  // the block after the pool's last
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    if (!lc.owns_kv()) continue;
    const int g = layer_group_[li];
    const int64_t slots = (static_cast<int64_t>(num_blocks_[g]) + 1) * bs;
    const size_t bytes = static_cast<size_t>(slots) * lc.num_kv_heads * lc.head_dim * 2;
    for (Tensor* t : {&layers_[li].k_cache, &layers_[li].v_cache}) {
      SLUICE_ASSIGN_OR_RETURN(DeviceMemory mem,
                              DeviceMemory::allocate(bytes, fmt::format("KV cache of layer {}", li)));
      SLUICE_CUDA_CHECK(cudaMemsetAsync(mem.data(), 0, bytes, static_cast<cudaStream_t>(stream_)));
      *t = dev_contig(mem.data(), DType::kBF16, {slots, lc.num_kv_heads, lc.head_dim});
      kv_bytes_ += bytes;
      kv_memory_.push_back(std::move(mem));
    }
  }
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return Status::ok();
}

Status CudaGemma3Model::stage(const ForwardBatch& batch, int pad_to, std::span<const int> widths,
                              StepLayout* L) {
  const ModelConfig& c = config_;
  const int T = static_cast<int>(batch.tokens.size());
  const int S = static_cast<int>(batch.seq_lens.size());
  const int R = static_cast<int>(batch.logit_rows.size());
  SLUICE_RETURN_IF_ERROR(validate_forward_batch(c, batch, num_blocks_, options_.block_size,
                                                static_cast<size_t>(R) * c.vocab_size));
  if (T > options_.max_num_tokens || S > options_.max_num_seqs || R > options_.max_num_seqs) {
    return Status::invalid_argument(fmt::format(
        "step of {} tokens, {} sequences, {} logit rows exceeds the CUDA model's limits ({}, {}, {})",
        T, S, R, options_.max_num_tokens, options_.max_num_seqs, options_.max_num_seqs));
  }
  for (const KvGroupBatch& gb : batch.groups) {
    if (gb.max_blocks > max_table_width_) {
      return Status::invalid_argument(fmt::format("block tables {} wide; the context length allows {}",
                                                  gb.max_blocks, max_table_width_));
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
              "token {}: positions of one sequence must be consecutive in the batch ({} after {})", t,
              batch.positions[t], batch.positions[t - 1]));
        }
        continue;
      }
      if (s != next_seq) {
        return Status::invalid_argument(fmt::format(
            "token {} belongs to sequence {}; the CUDA backend needs the tokens of sequence 0, 1, ... "
            "as consecutive runs",
            t, s));
      }
      query_start[s] = t;
      ++next_seq;
    }
    if (next_seq != S) {
      return Status::invalid_argument(fmt::format("batch has {} sequences but tokens for {}", S, next_seq));
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
    for (int i = static_cast<int>(v.size()); i < padded_len; ++i) host[used + i] = pad_iota ? i : pad_value;
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
        std::copy_n(gb.block_tables.data() + static_cast<size_t>(s) * gb.max_blocks, gb.max_blocks, row);
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

void CudaGemma3Model::enqueue(const StepLayout& L) {
  const ModelConfig& c = config_;
  const int T = L.T, S = L.S, R = L.R;
  auto ints = [&](size_t offset, int64_t n) {
    return dev_contig(static_cast<int32_t*>(meta_dev_.data()) + offset, DType::kI32, {n});
  };
  const Tensor tokens = ints(L.o_tokens, T), pos = ints(L.o_pos, T), token_seq = ints(L.o_seq, T);
  const Tensor seq_lens = ints(L.o_lens, S), qstart = ints(L.o_qs, S + 1), logit_rows = ints(L.o_rows, R);

  const int64_t H = c.hidden_size, nq = c.num_heads;
  const float eps = c.rms_norm_eps;
  const bool one_plus = c.norm_one_plus_weight;
  const Tensor x = dev_contig(x_.data(), DType::kF32, {T, H});
  const Tensor a = dev_contig(a_.data(), DType::kBF16, {T, H});
  const Tensor o = dev_contig(o_.data(), DType::kF32, {T, H});
  void* s = stream_;

  kc::embedding({x, embed_, tokens, c.embed_scale}, s);
  kc::rms_norm({a, x, layers_[0].attn_norm, eps, one_plus}, s);
  for (int li = 0; li < c.num_layers; ++li) {
    const LayerConfig& lc = c.layers[li];
    const Layer& ly = layers_[li];
    const int64_t d = lc.head_dim, nkv = lc.num_kv_heads, I = lc.intermediate_size;
    const int64_t w = (nq + 2 * nkv) * d;
    const int g = layer_group_[li];
    const Tensor slots = ints(L.o_slots[g], T);
    const Tensor tables = dev_contig(static_cast<int32_t*>(meta_dev_.data()) + L.o_tables[g], DType::kI32,
                                     {S, L.table_width[g]});

    const Tensor qkv = dev_contig(qkv_.data(), DType::kBF16, {T, w});
    kc::matmul({qkv, a, ly.wqkv}, s);
    auto* base = static_cast<uint16_t*>(qkv_.data());
    const Tensor q = dev_view(base, DType::kBF16, {T, nq, d}, {w, d, 1});
    const Tensor k = dev_view(base + nq * d, DType::kBF16, {T, nkv, d}, {w, d, 1});
    const Tensor v = dev_view(base + (nq + nkv) * d, DType::kBF16, {T, nkv, d}, {w, d, 1});
    kc::rms_norm({q, q, ly.q_norm, eps, one_plus}, s);
    kc::rms_norm({k, k, ly.k_norm, eps, one_plus}, s);
    const RopeConfig& r = lc.rope;
    kc::rope({q, pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset, r.freq_dim}, s);
    kc::rope({k, pos, r.theta, r.freq_scale, r.num_pairs, r.pair_offset, r.freq_dim}, s);
    kc::cache_write({k, v, ly.k_cache, ly.v_cache, slots}, s);

    const Tensor attn = dev_contig(attn_.data(), DType::kBF16, {T, nq, d});
    kc::CudaPagedAttentionArgs pa;
    const int window = lc.type == LayerType::kSliding ? c.sliding_window : 0;
    pa.base = {attn, q, ly.k_cache, ly.v_cache, token_seq, pos, tables, seq_lens, options_.block_size,
               c.attn_scale, window, c.attn_logit_softcap};
    pa.query_start = qstart;
    pa.max_query_len = L.max_query_len;
    pa.max_seq_len = L.max_seq_len[g];
    pa.workspace = dev_contig(attn_workspace_.data(), DType::kF32,
                              {static_cast<int64_t>(std::max<size_t>(attn_workspace_bytes_ / 4, 1))});
    kc::paged_attention(pa, s);
    kc::matmul({o, attn.view({T, nq * d}), ly.wo}, s);
    kc::fused_add_rms_norm({x, o, ly.post_attn_norm, a, ly.ffn_norm, eps, one_plus}, s);

    const Tensor gu = dev_contig(gu_.data(), DType::kBF16, {T, 2 * I});
    kc::matmul({gu, a, ly.wgu}, s);
    auto* gub = static_cast<uint16_t*>(gu_.data());
    const Tensor act = dev_contig(act_.data(), DType::kBF16, {T, I});
    kc::geglu({act, dev_view(gub, DType::kBF16, {T, I}, {2 * I, 1}),
               dev_view(gub + I, DType::kBF16, {T, I}, {2 * I, 1})},
              s);
    kc::matmul({o, act, ly.w_down}, s);
    if (li + 1 < c.num_layers) {
      kc::fused_add_rms_norm({x, o, ly.post_ffn_norm, a, layers_[li + 1].attn_norm, eps, one_plus}, s);
    } else {
      kc::add_rms_norm({x, o, ly.post_ffn_norm, eps, one_plus}, s);
    }
  }
  if (R == 0) return;
  const Tensor rows = dev_contig(rows_.data(), DType::kF32, {R, H});
  kc::gather_rows({rows, x, logit_rows}, s);
  const Tensor y = dev_contig(a_.data(), DType::kBF16, {R, H});
  kc::rms_norm({y, rows, final_norm_, eps, one_plus}, s);
  const Tensor logits = dev_contig(logits_.data(), DType::kF32, {R, c.vocab_size});
  kc::matmul({logits, y, embed_}, s);
  if (c.final_logit_softcap > 0) kc::softcap({logits, c.final_logit_softcap}, s);
  kc::argmax({dev_contig(argmax_.data(), DType::kI32, {R}), logits}, s);
}

bool CudaGemma3Model::is_plain_decode(const ForwardBatch& b) const {
  const size_t S = b.seq_lens.size();
  if (S == 0 || b.tokens.size() != S || b.logit_rows.size() != S) return false;
  for (size_t i = 0; i < S; ++i) {
    if (b.token_seq[i] != static_cast<int32_t>(i) || b.logit_rows[i] != static_cast<int32_t>(i)) return false;
  }
  return true;
}

Status CudaGemma3Model::run(const ForwardBatch& batch) {
  auto stream = static_cast<cudaStream_t>(stream_);
  if (!options_.use_cuda_graphs || !is_plain_decode(batch)) {
    StepLayout L;
    SLUICE_RETURN_IF_ERROR(stage(batch, 0, {}, &L));
    enqueue(L);
    num_logit_rows_ = L.R;
    return Status::ok();
  }
  // Decode: replay the graph of this batch-size bucket and table width (captured on first use).
  const int S = static_cast<int>(batch.seq_lens.size());
  int bucket = 1;
  while (bucket < S) bucket *= 2;
  bucket = std::min(bucket, options_.max_num_seqs);
  if (bucket > options_.max_num_tokens) {  // scratch holds max_num_tokens rows
    StepLayout L;
    SLUICE_RETURN_IF_ERROR(stage(batch, 0, {}, &L));
    enqueue(L);
    num_logit_rows_ = L.R;
    return Status::ok();
  }
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
    SLUICE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    SLUICE_CUDA_CHECK(cudaGraphDestroy(graph));
    it = graphs_.emplace(std::move(key), exec).first;
  }
  SLUICE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second), stream));
  num_logit_rows_ = L.real_rows;
  return Status::ok();
}

Status CudaGemma3Model::forward(const ForwardBatch& batch, std::span<float> logits) {
  SLUICE_RETURN_IF_ERROR(run(batch));
  auto stream = static_cast<cudaStream_t>(stream_);
  if (num_logit_rows_ > 0) {
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(logits.data(), logits_.data(), logits.size() * 4,
                                      cudaMemcpyDeviceToHost, stream));
  }
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return Status::ok();
}

Status CudaGemma3Model::forward_greedy(const ForwardBatch& batch, std::span<int32_t> tokens) {
  if (tokens.size() != batch.logit_rows.size()) {
    return Status::invalid_argument(fmt::format("token buffer holds {} ids for {} logit rows", tokens.size(),
                                                batch.logit_rows.size()));
  }
  SLUICE_RETURN_IF_ERROR(run(batch));
  auto stream = static_cast<cudaStream_t>(stream_);
  if (num_logit_rows_ > 0) {
    SLUICE_CUDA_CHECK(cudaMemcpyAsync(tokens.data(), argmax_.data(), num_logit_rows_ * 4,
                                      cudaMemcpyDeviceToHost, stream));
  }
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return Status::ok();
}

}  // namespace sluice::models::cuda
