// CUDA paged KV cache ops (kernels/cuda/paged_attention.h) against the CPU backend
// (cpu_ops().cache_write and cpu_ops().paged_attention, the contracts of kernels/ops.h) on
// the same values: the device cache holds values rounded to its dtype, and the reference
// reads f32 copies of exactly those values.
//
// The attention sweep covers head dims 64/128/256/512, GQA groups 1/2/4/8 (and 3, 24, 32),
// windows (none, small, Gemma's 1024), soft-cap 0 and 50, block sizes 8/16/32, bf16 and f32
// caches, f32 and bf16 q/out, mixed batches of prefill chunks (fresh prompts and chunks
// after cached context) with decodes over long contexts (split-K), random non-contiguous
// block tables with -1 entries for blocks that left the window, NaN in every cache slot no
// query may read, and outputs poisoned with NaN. The argument checks run everywhere; the
// kernel tests skip cleanly without a device.

#include "kernels/cuda/paged_attention.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "kernels/ops.h"  // cpu_ops(): the reference

namespace sluice::kernels::cuda {
namespace {

using namespace testing;  // gpu_test_util.h

// i32 values in device memory, viewed as a [n] or [rows, cols] tensor.
struct DeviceInts {
  explicit DeviceInts(const std::vector<int32_t>& host, int64_t cols = 0)
      : buffer(std::max<size_t>(host.size(), 1) * sizeof(int32_t)) {
    if (!host.empty()) buffer.upload(host.data());
    const auto n = static_cast<int64_t>(host.size());
    tensor = cols > 0 ? Tensor::make(buffer.data(), DType::kI32, {n / cols, cols}, Device::kCuda)
                      : Tensor::make(buffer.data(), DType::kI32, {n}, Device::kCuda);
  }
  DeviceBuffer buffer;
  Tensor tensor;
};

Tensor host_tensor(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return Tensor::make(v.data(), DType::kF32, shape);
}
Tensor host_ints(std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
  return Tensor::make(v.data(), DType::kI32, shape);
}

// Element tolerances: f32 outputs differ from the reference only by f32 summation order
// (the norm bound is the task's 1e-4; the elementwise bounds leave room for near-zero
// outputs), bf16 outputs by one rounding.
Tolerance tolerance_of(DType out) {
  return out == DType::kBF16 ? tolerance_for(out) : Tolerance{1e-4, 1e-3, 1e-5};
}

// ---------------------------------------------------------------------------------------
// cache_write

struct CacheWriteCase {
  const char* name;
  int64_t num_tokens, num_kv_heads, head_dim, num_slots;
  DType src, cache;
  int64_t token_pad, head_pad, offset;  // extra elements between tokens / heads; view offset
};

void run_cache_write_case(const CacheWriteCase& c, std::mt19937& rng) {
  SCOPED_TRACE(std::string(c.name) + ", src " + dtype_name(c.src) + ", cache " +
               dtype_name(c.cache));
  const int64_t n = c.num_tokens, h = c.num_kv_heads, d = c.head_dim;
  const int64_t head_stride = d + c.head_pad;
  const int64_t token_stride = h * head_stride + c.token_pad;
  TestTensor k(c.src, {n, h, d}, {token_stride, head_stride, 1}, c.offset);
  TestTensor v(c.src, {n, h, d}, {token_stride, head_stride, 1}, c.offset);
  k.fill_random(rng, -3.0f, 3.0f);
  v.fill_random(rng, -3.0f, 3.0f);
  TestTensor k_cache(c.cache, {c.num_slots, h, d});  // poisoned: NaN everywhere
  TestTensor v_cache(c.cache, {c.num_slots, h, d});

  // Distinct random slots, about one token in eight skipped (-1).
  std::vector<int32_t> perm(c.num_slots);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> slots(n);
  for (int64_t t = 0; t < n; ++t) slots[t] = rng() % 8 == 0 ? -1 : perm[t];
  DeviceInts device_slots(slots);

  // Reference: the CPU op on f32 copies, then one rounding to the cache dtype.
  std::vector<float> k_host(n * h * d), v_host(n * h * d);
  for (int64_t r = 0; r < n * h; ++r) {
    for (int64_t e = 0; e < d; ++e) {
      k_host[r * d + e] = k.at(r, e);
      v_host[r * d + e] = v.at(r, e);
    }
  }
  std::vector<float> k_ref(c.num_slots * h * d, std::nanf("")), v_ref = k_ref;
  std::vector<int32_t> slots_host = slots;
  cpu_ops().cache_write({host_tensor(k_host, {n, h, d}), host_tensor(v_host, {n, h, d}),
                         host_tensor(k_ref, {c.num_slots, h, d}),
                         host_tensor(v_ref, {c.num_slots, h, d}), host_ints(slots_host, {n})});

  cache_write({k.view(), v.view(), k_cache.view(), v_cache.view(), device_slots.tensor}, nullptr);
  SLUICE_CUDA_CHECK(cudaGetLastError());
  k_cache.download();
  v_cache.download();
  int64_t wrong = 0;
  for (int64_t i = 0; i < c.num_slots * h * d; ++i) {
    const float want_k = round_to(k_ref[i], c.cache), want_v = round_to(v_ref[i], c.cache);
    const float got_k = k_cache.host()[i], got_v = v_cache.host()[i];
    const bool ok_k = std::isnan(want_k) ? std::isnan(got_k) : got_k == want_k;
    const bool ok_v = std::isnan(want_v) ? std::isnan(got_v) : got_v == want_v;
    if ((!ok_k || !ok_v) && wrong++ < 3) {
      ADD_FAILURE() << "cache element " << i << " (slot " << i / (h * d) << "): k " << got_k
                    << " want " << want_k << ", v " << got_v << " want " << want_v;
    }
  }
  EXPECT_EQ(wrong, 0) << "cache elements that differ (untouched slots must stay NaN)";
}

TEST(CacheWriteGpu, MatchesReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(7001);
  const CacheWriteCase cases[] = {
      {"gemma sliding, fused qkv rows", 37, 8, 256, 96, DType::kF32, DType::kBF16, 16 * 256, 0, 0},
      {"gemma global", 19, 2, 512, 64, DType::kBF16, DType::kBF16, 0, 0, 0},
      {"f32 cache, head padding", 23, 4, 128, 48, DType::kF32, DType::kF32, 8, 8, 0},
      {"bf16 source into f32 cache", 11, 3, 64, 32, DType::kBF16, DType::kF32, 0, 0, 0},
      {"misaligned view (scalar path)", 13, 2, 64, 32, DType::kBF16, DType::kBF16, 3, 0, 1},
      {"odd head_dim (scalar path)", 9, 2, 7, 16, DType::kF32, DType::kBF16, 1, 1, 0},
  };
  for (const CacheWriteCase& c : cases) {
    run_cache_write_case(c, rng);
  }
}

// ---------------------------------------------------------------------------------------
// paged_attention

struct SeqSpec {
  int context;      // keys already cached before this step
  int num_queries;  // query tokens of this step: positions context .. context + num_queries - 1
};

struct AttnCase {
  std::string name;
  int head_dim, num_q_heads, num_kv_heads, block_size, window;
  float softcap;
  DType cache, q, out;
  std::vector<SeqSpec> seqs;
  bool strided = false;  // q inside a fused QKV row, out with padding and an odd offset
  AttentionKernel kernel = AttentionKernel::kAuto;
  int split_keys = 0;
};

// A mixed batch on the host and on the device, plus its reference output.
class AttnBatch {
 public:
  AttnBatch(const AttnCase& c, std::mt19937& rng) : c_(c) {
    const int s_count = static_cast<int>(c.seqs.size());
    const int bs = c.block_size;
    const int64_t nq = c.num_q_heads, nkv = c.num_kv_heads, d = c.head_dim;

    // Token layout: sequence s owns rows [query_start[s], query_start[s + 1]).
    query_start_.push_back(0);
    for (int s = 0; s < s_count; ++s) {
      const SeqSpec& q = c.seqs[s];
      seq_lens_.push_back(q.context + q.num_queries);
      for (int i = 0; i < q.num_queries; ++i) {
        token_seq_.push_back(s);
        positions_.push_back(q.context + i);
      }
      query_start_.push_back(static_cast<int32_t>(token_seq_.size()));
      max_query_len_ = std::max(max_query_len_, q.num_queries);
      max_seq_len_ = std::max(max_seq_len_, q.context + q.num_queries);
    }
    num_tokens_ = static_cast<int64_t>(token_seq_.size());

    // Block tables: random distinct physical blocks, spares left unused, extra columns -1.
    int max_blocks = 0, used = 0;
    for (int len : seq_lens_) {
      max_blocks = std::max(max_blocks, (len + bs - 1) / bs);
      used += (len + bs - 1) / bs;
    }
    max_blocks_ = max_blocks + 2;
    num_blocks_ = used + 5;
    std::vector<int32_t> perm(num_blocks_);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    tables_.assign(static_cast<size_t>(s_count) * max_blocks_, -1);
    int next = 0;
    for (int s = 0; s < s_count; ++s) {
      const int blocks = (seq_lens_[s] + bs - 1) / bs;
      // With a window, blocks whose keys are all invisible to the step's first query have
      // been released by the scheduler: -1, and never read.
      const int first_visible = c.window > 0 ? std::max(0, c.seqs[s].context - c.window + 1) : 0;
      for (int b = 0; b < blocks; ++b) {
        const int32_t id = perm[next++];
        if ((b + 1) * bs <= first_visible) continue;  // id stays unused (its slots stay NaN)
        tables_[static_cast<size_t>(s) * max_blocks_ + b] = id;
      }
    }

    // Caches: NaN everywhere (so a read of a wrong slot shows), random values in the slots
    // of every key position < seq_len of a mapped block.
    const int64_t num_slots = static_cast<int64_t>(num_blocks_) * bs;
    k_cache_ = std::make_unique<TestTensor>(c.cache, std::vector<int64_t>{num_slots, nkv, d});
    v_cache_ = std::make_unique<TestTensor>(c.cache, std::vector<int64_t>{num_slots, nkv, d});
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int s = 0; s < s_count; ++s) {
      for (int j = 0; j < seq_lens_[s]; ++j) {
        const int32_t id = tables_[static_cast<size_t>(s) * max_blocks_ + j / bs];
        if (id < 0) continue;
        const int64_t slot = static_cast<int64_t>(id) * bs + j % bs;
        for (int64_t h = 0; h < nkv; ++h) {
          for (int64_t e = 0; e < d; ++e) {
            k_cache_->at(slot * nkv + h, e) = round_to(dist(rng), c.cache);
            v_cache_->at(slot * nkv + h, e) = round_to(dist(rng), c.cache);
          }
        }
      }
    }
    k_cache_->upload();
    v_cache_->upload();

    // q (optionally one of the heads' views into a fused QKV row) and a poisoned out.
    const int64_t n = num_tokens_;
    if (c.strided) {
      q_ = std::make_unique<TestTensor>(c.q, std::vector<int64_t>{n, nq, d},
                                        std::vector<int64_t>{(nq + 2 * nkv) * d, d, 1});
      out_ = std::make_unique<TestTensor>(c.out, std::vector<int64_t>{n, nq, d},
                                          std::vector<int64_t>{nq * (d + 3) + 5, d + 3, 1}, 1);
    } else {
      q_ = std::make_unique<TestTensor>(c.q, std::vector<int64_t>{n, nq, d});
      out_ = std::make_unique<TestTensor>(c.out, std::vector<int64_t>{n, nq, d});
    }
    fill_q(rng);

    d_token_seq_ = std::make_unique<DeviceInts>(token_seq_);
    d_positions_ = std::make_unique<DeviceInts>(positions_);
    d_seq_lens_ = std::make_unique<DeviceInts>(seq_lens_);
    d_query_start_ = std::make_unique<DeviceInts>(query_start_);
    d_tables_ = std::make_unique<DeviceInts>(tables_, max_blocks_);
    workspace_bytes_ = paged_attention_workspace_bytes(static_cast<int>(n), s_count, c.num_q_heads,
                                                       c.head_dim, max_seq_len_);
    workspace_ = std::make_unique<DeviceBuffer>(workspace_bytes_);
  }

  // New random queries: larger than the keys so scores spread and the soft-cap bends them.
  void fill_q(std::mt19937& rng) {
    const float amp = c_.softcap > 0.0f ? 4.0f : 1.0f;
    q_->fill_random(rng, -amp, amp);
  }

  float scale() const {
    return c_.softcap > 0.0f ? 1.0f : 2.0f / std::sqrt(static_cast<float>(c_.head_dim));
  }

  CudaPagedAttentionArgs device_args() const {
    CudaPagedAttentionArgs a;
    a.base.out = out_->view();
    a.base.q = q_->view();
    a.base.k_cache = k_cache_->view();
    a.base.v_cache = v_cache_->view();
    a.base.token_seq = d_token_seq_->tensor;
    a.base.q_positions = d_positions_->tensor;
    a.base.block_tables = d_tables_->tensor;
    a.base.seq_lens = d_seq_lens_->tensor;
    a.base.block_size = c_.block_size;
    a.base.scale = scale();
    a.base.window = c_.window;
    a.base.softcap = c_.softcap;
    a.query_start = d_query_start_->tensor;
    a.max_query_len = max_query_len_;
    a.max_seq_len = max_seq_len_;
    a.workspace = Tensor::make(workspace_->data(), DType::kI32,
                               {static_cast<int64_t>((workspace_bytes_ + 3) / 4)}, Device::kCuda);
    a.kernel = c_.kernel;
    a.split_keys = c_.split_keys;
    return a;
  }

  // Whether any part runs on tensor cores: q is then rounded to bf16 by contract (the
  // reference reads it rounded), and P is rounded to bf16 before PV (a second rounding in
  // every output, so the bounds are twice bf16's).
  bool uses_mma() const {
    const MmaParts parts = paged_attention_mma_parts(device_args());
    return parts.decodes || parts.prefills;
  }
  Tolerance tolerance() const {
    return uses_mma() ? Tolerance{1e-2, 1.0 / 64, 2e-3} : tolerance_of(c_.out);
  }

  // cpu_ops().paged_attention on f32 copies of the device's values, [N * nq * d].
  std::vector<double> reference() {
    const int64_t n = num_tokens_, nq = c_.num_q_heads, nkv = c_.num_kv_heads, d = c_.head_dim;
    std::vector<float> q(n * nq * d), out(n * nq * d, 0.0f);
    const bool round_q = uses_mma();
    for (int64_t r = 0; r < n * nq; ++r) {
      for (int64_t e = 0; e < d; ++e) {
        q[r * d + e] = round_q ? round_to(q_->at(r, e), DType::kBF16) : q_->at(r, e);
      }
    }
    const int64_t num_slots = static_cast<int64_t>(num_blocks_) * c_.block_size;
    std::vector<float>& k = k_cache_->host();  // contiguous, no offset: the values themselves
    std::vector<float>& v = v_cache_->host();
    PagedAttentionArgs a;
    a.out = host_tensor(out, {n, nq, d});
    a.q = host_tensor(q, {n, nq, d});
    a.k_cache = host_tensor(k, {num_slots, nkv, d});
    a.v_cache = host_tensor(v, {num_slots, nkv, d});
    a.token_seq = host_ints(token_seq_, {n});
    a.q_positions = host_ints(positions_, {n});
    a.block_tables = host_ints(tables_, {static_cast<int64_t>(seq_lens_.size()), max_blocks_});
    a.seq_lens = host_ints(seq_lens_, {static_cast<int64_t>(seq_lens_.size())});
    a.block_size = c_.block_size;
    a.scale = scale();
    a.window = c_.window;
    a.softcap = c_.softcap;
    cpu_ops().paged_attention(a);
    return {out.begin(), out.end()};
  }

  // Downloads out and compares it with `ref`; the padding around the view stays NaN.
  // Prints one line per call (the relative error, and the sequences of the tokens whose
  // rows are off), so a failing sweep says at once whether decodes or prefills break.
  void check(const std::vector<double>& ref) {
    out_->download();
    const Tolerance tol = tolerance();
    expect_close(*out_, ref, tol.max_rel, tol.rtol, tol.atol);
    EXPECT_EQ(out_->padding_written(), 0) << "elements outside the out view were written";
    const int64_t per_token = static_cast<int64_t>(c_.num_q_heads) * c_.head_dim;
    double err2 = 0.0, ref2 = 0.0, max_ref = 0.0;
    for (double v : ref) max_ref = std::max(max_ref, std::fabs(v));
    std::vector<int> bad_seqs;
    for (int64_t t = 0; t < num_tokens_; ++t) {
      bool bad = false;
      for (int64_t i = 0; i < per_token; ++i) {
        const int64_t row = t * c_.num_q_heads + i / c_.head_dim;
        const double want = ref[t * per_token + i], got = out_->at(row, i % c_.head_dim);
        const double diff = got - want;
        err2 += diff * diff;
        ref2 += want * want;
        bad = bad || !(std::fabs(diff) <= tol.rtol * std::fabs(want) + tol.atol * max_ref);
      }
      const int s = token_seq_[t];
      if (bad && std::find(bad_seqs.begin(), bad_seqs.end(), s) == bad_seqs.end()) {
        bad_seqs.push_back(s);
      }
    }
    std::string seqs;
    for (int s : bad_seqs) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), " %d(ctx %d x%d)", s, c_.seqs[s].context,
                    c_.seqs[s].num_queries);
      seqs.append(buf);
    }
    std::printf("[attn] %s%s: rel %.3g%s%s\n", c_.name.c_str(), uses_mma() ? " (mma)" : "",
                std::sqrt(err2 / std::max(ref2, 1e-300)),
                bad_seqs.empty() ? "" : "  BAD seqs:", seqs.c_str());
    std::fflush(stdout);
  }

  TestTensor& out() { return *out_; }

 private:
  AttnCase c_;
  std::vector<int32_t> token_seq_, positions_, seq_lens_, query_start_, tables_;
  int64_t num_tokens_ = 0;
  int max_query_len_ = 0, max_seq_len_ = 0, max_blocks_ = 0, num_blocks_ = 0;
  std::unique_ptr<TestTensor> k_cache_, v_cache_, q_, out_;
  std::unique_ptr<DeviceInts> d_token_seq_, d_positions_, d_seq_lens_, d_query_start_, d_tables_;
  size_t workspace_bytes_ = 0;
  std::unique_ptr<DeviceBuffer> workspace_;
};

void run_attention_case(const AttnCase& c, std::mt19937& rng) {
  SCOPED_TRACE(c.name);
  AttnBatch batch(c, rng);
  const std::vector<double> ref = batch.reference();
  paged_attention(batch.device_args(), nullptr);
  SLUICE_CUDA_CHECK(cudaGetLastError());
  batch.check(ref);
}

std::string case_name(const AttnCase& c) {
  return "d " + std::to_string(c.head_dim) + ", nq " + std::to_string(c.num_q_heads) + ", nkv " +
         std::to_string(c.num_kv_heads) + ", block " + std::to_string(c.block_size) + ", window " +
         std::to_string(c.window) + ", softcap " + std::to_string(static_cast<int>(c.softcap)) +
         ", cache " + dtype_name(c.cache) + ", q " + dtype_name(c.q) + ", out " +
         dtype_name(c.out) + (c.strided ? ", strided" : "") +
         (c.kernel == AttentionKernel::kSimt ? ", simt"
                                             : (c.kernel == AttentionKernel::kMma ? ", mma" : ""));
}

// A mixed step: a fresh prompt chunk, a chunk after cached context, a multi-token chunk
// deep in the context, and decodes at contexts 0, 700 and 3000 (the long ones split).
const std::vector<SeqSpec> kMixedBatch = {{2999, 1}, {0, 37},  {150, 20},
                                          {0, 1},    {699, 1}, {1000, 2}};

TEST(PagedAttentionGpu, MatchesReferenceOverSweep) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8101);
  int index = 0;
  for (int d : {64, 128, 256, 512}) {
    for (int group : {1, 2, 4, 8}) {
      for (DType cache : {DType::kBF16, DType::kF32}) {
        AttnCase c;
        c.head_dim = d;
        c.num_kv_heads = 2;
        c.num_q_heads = 2 * group;
        c.block_size = index % 4 == 3 ? 32 : 16;
        c.window = index % 3 == 1 ? 37 : (index % 3 == 2 ? 700 : 0);
        c.softcap = (index / 2) % 2 == 1 ? 50.0f : 0.0f;
        c.cache = cache;
        if (cache == DType::kF32) {
          c.q = c.out = DType::kF32;
        } else {
          c.q = index % 4 < 2 ? DType::kBF16 : DType::kF32;
          c.out = index % 4 == 1 ? DType::kF32 : DType::kBF16;
        }
        c.strided = index % 5 == 2;
        c.seqs = kMixedBatch;
        c.name = case_name(c);
        run_attention_case(c, rng);  // every case runs, so a failure shows its pattern
        ++index;
      }
    }
  }
}

TEST(PagedAttentionGpu, GemmaShapesAndOddGroups) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8102);
  std::vector<AttnCase> cases;
  auto add = [&](int d, int nq, int nkv, int bs, int window, float softcap, DType cache, DType q,
                 DType out, std::vector<SeqSpec> seqs) {
    AttnCase c{"", d, nq, nkv, bs, window, softcap, cache, q, out, std::move(seqs)};
    c.name = case_name(c);
    cases.push_back(std::move(c));
  };
  // Gemma 4 sliding layer (window 1024, blocks released behind it) and global layer.
  add(256, 16, 8, 16, 1024, 0.0f, DType::kBF16, DType::kBF16, DType::kBF16,
      {{3000, 1}, {1500, 64}, {0, 40}, {2047, 1}, {5000, 1}});
  add(512, 16, 2, 16, 0, 0.0f, DType::kBF16, DType::kBF16, DType::kBF16,
      {{3000, 1}, {1500, 64}, {0, 40}, {2047, 1}, {4100, 1}});
  // Groups of 3, 24 (a chunk of 16 heads and one of 8) and 32; block size 8.
  add(128, 12, 4, 8, 0, 0.0f, DType::kBF16, DType::kF32, DType::kF32, kMixedBatch);
  add(64, 24, 1, 16, 50, 50.0f, DType::kBF16, DType::kBF16, DType::kBF16, kMixedBatch);
  add(64, 32, 1, 32, 0, 0.0f, DType::kF32, DType::kF32, DType::kF32, kMixedBatch);
  // Pure decode batches (max_query_len 1): many sequences, contexts 1 .. 3000.
  std::vector<SeqSpec> decodes;
  for (int i = 0; i < 40; ++i) decodes.push_back({(i * 977) % 3000, 1});
  add(256, 16, 8, 16, 0, 0.0f, DType::kBF16, DType::kBF16, DType::kBF16, decodes);
  add(512, 16, 2, 32, 0, 50.0f, DType::kF32, DType::kF32, DType::kF32, decodes);
  // Pure prefill: one prompt (320 tokens), and several chunks after cached context.
  add(512, 8, 1, 16, 0, 0.0f, DType::kBF16, DType::kBF16, DType::kF32, {{0, 320}});
  add(256, 8, 4, 16, 100, 0.0f, DType::kF32, DType::kF32, DType::kF32,
      {{33, 17}, {400, 31}, {0, 2}, {64, 64}});
  for (const AttnCase& c : cases) run_attention_case(c, rng);
}

// The tensor-core kernel, forced, over what it must handle: head dims 256 and 512; groups 1
// and 2 (decode rows mostly padding; prefill rows 16 or 8 tokens), 8, 16 and 24 (chunks of 16
// and 8); windows with released blocks; soft-cap; block sizes 8/16/32; f32 and bf16 q
// (rounded to bf16 by contract) and out; strided views; decodes from 1 to 5000 keys (one tile
// to 64 splits); prefill chunks fresh and after cached context, beside decodes and alone.
// The same batches through the SIMT kernel are checked too, so a failure names the kernel.
TEST(PagedAttentionGpu, TensorCoreKernelMatchesReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8104);
  std::vector<SeqSpec> decodes;
  for (int i = 0; i < 10; ++i) decodes.push_back({(i * 1231) % 5000, 1});
  decodes.push_back({0, 1});
  decodes.push_back({15, 1});
  decodes.push_back({16, 1});
  struct Shape {
    int d, nq, nkv, bs, window;
    float softcap;
    DType q, out;
    bool strided;
  };
  const Shape shapes[] = {
      {512, 16, 2, 16, 0, 0.0f, DType::kBF16, DType::kBF16, false},     // Gemma 4 global
      {256, 16, 2, 16, 1024, 0.0f, DType::kBF16, DType::kBF16, false},  // group 8, d 256
      {512, 32, 2, 32, 0, 50.0f, DType::kBF16, DType::kBF16, true},     // group 16
      {256, 24, 1, 8, 37, 0.0f, DType::kF32, DType::kBF16, false},      // group 24 -> 16 + 8
      {512, 2, 2, 16, 700, 0.0f, DType::kBF16, DType::kF32, false},     // group 1
      {256, 8, 4, 16, 0, 50.0f, DType::kF32, DType::kF32, true},        // group 2
  };
  for (const Shape& s : shapes) {
    const std::vector<SeqSpec> prefills = {{0, 300}, {517, 64}, {1030, 3}};
    const std::vector<SeqSpec>* batches[] = {&decodes, &kMixedBatch, &prefills};
    for (const std::vector<SeqSpec>* seqs : batches) {
      for (AttentionKernel kernel : {AttentionKernel::kMma, AttentionKernel::kSimt}) {
        AttnCase c{"",           s.d, s.nq,  s.nkv, s.bs,      s.window, s.softcap,
                   DType::kBF16, s.q, s.out, *seqs, s.strided, kernel};
        c.name = case_name(c);
        run_attention_case(c, rng);
      }
    }
  }
}

// The finest decode split (32 keys a part, up to 64 parts; a benchmark's choice), both
// kernels, decodes of 1 to 5000 keys beside a prefill chunk.
TEST(PagedAttentionGpu, FineSplitsMatchReference) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8105);
  std::vector<SeqSpec> seqs = {{0, 1}, {31, 1}, {32, 1}, {33, 1}, {511, 1}, {4999, 1}, {70, 9}};
  for (AttentionKernel kernel : {AttentionKernel::kSimt, AttentionKernel::kMma}) {
    AttnCase c{
        "",           512,          16,           2,    16,    0,      0.0f,
        DType::kBF16, DType::kBF16, DType::kBF16, seqs, false, kernel, kPagedFinestSplitKeys};
    c.name = case_name(c) + ", split_keys 32";
    run_attention_case(c, rng);
  }
}

// The launch sequence under stream capture: no allocation, sync or host read may happen
// inside. The graph, replayed after new queries are uploaded, must track them.
TEST(PagedAttentionGpu, CapturesIntoAGraph) {
  SLUICE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8103);
  AttnCase c{"", 512, 16, 2, 16, 0, 0.0f, DType::kBF16, DType::kBF16, DType::kBF16, kMixedBatch};
  c.name = case_name(c);
  SCOPED_TRACE(c.name);
  AttnBatch batch(c, rng);
  const TestStream stream;
  const CapturedGraph graph(stream.get(), cudaStreamCaptureModeGlobal,
                            [&](cudaStream_t s) { paged_attention(batch.device_args(), s); });
  for (int replay = 0; replay < 2; ++replay) {
    if (replay > 0) batch.fill_q(rng);
    const std::vector<double> ref = batch.reference();
    graph.replay(stream.get());
    batch.check(ref);
  }
}

// ---------------------------------------------------------------------------------------
// Argument checks: no device needed (the views point nowhere and are never read).

// 5 tokens of 3 sequences, 16 query heads over 2 KV heads of 512, 64 blocks of 16.
CudaPagedAttentionArgs good_attention() {
  CudaPagedAttentionArgs a;
  a.base.q = fake(0x10000000, DType::kBF16, {5, 16, 512});
  a.base.out = fake(0x20000000, DType::kBF16, {5, 16, 512});
  a.base.k_cache = fake(0x30000000, DType::kBF16, {1024, 2, 512});
  a.base.v_cache = fake(0x40000000, DType::kBF16, {1024, 2, 512});
  a.base.token_seq = fake(0x50000000, DType::kI32, {5});
  a.base.q_positions = fake(0x50001000, DType::kI32, {5});
  a.base.block_tables = fake(0x50002000, DType::kI32, {3, 64});
  a.base.seq_lens = fake(0x50004000, DType::kI32, {3});
  a.base.block_size = 16;
  a.base.scale = 0.0625f;
  a.query_start = fake(0x50005000, DType::kI32, {4});
  a.max_query_len = 3;
  a.max_seq_len = 1000;
  const size_t bytes = paged_attention_workspace_bytes(5, 3, 16, 512, 1000);
  a.workspace = fake(0x60000000, DType::kI32, {static_cast<int64_t>(bytes / 4)});
  return a;
}

TEST(PagedAttentionCheck, AcceptsValidArguments) {
  EXPECT_TRUE(check_paged_attention(good_attention()).is_ok());
  CudaPagedAttentionArgs a = good_attention();
  a.base.k_cache.dtype = a.base.v_cache.dtype = DType::kF32;
  a.base.q.dtype = DType::kF32;
  EXPECT_TRUE(check_paged_attention(a).is_ok()) << check_paged_attention(a).message();
  for (int d : {64, 128, 256}) {
    a = good_attention();
    a.base.q = fake(0x10000000, DType::kBF16, {5, 16, d});
    a.base.out = fake(0x20000000, DType::kBF16, {5, 16, d});
    a.base.k_cache = fake(0x30000000, DType::kBF16, {1024, 2, d});
    a.base.v_cache = fake(0x40000000, DType::kBF16, {1024, 2, d});
    EXPECT_TRUE(check_paged_attention(a).is_ok()) << check_paged_attention(a).message();
  }
}

TEST(PagedAttentionCheck, TensorCoreSelection) {
  auto parts = [](const CudaPagedAttentionArgs& a) {
    const MmaParts p = paged_attention_mma_parts(a);
    return std::pair{p.decodes, p.prefills};
  };
  // good_attention(): bf16 cache, q and out, d 512, 16 query heads over 2 KV heads.
  CudaPagedAttentionArgs a = good_attention();
  EXPECT_EQ(parts(a), std::pair(true, true));
  a.kernel = AttentionKernel::kSimt;
  EXPECT_EQ(parts(a), std::pair(false, false));

  a = good_attention();
  a.base.q.dtype = DType::kF32;  // auto keeps f32 queries exact; forced, they are rounded
  EXPECT_EQ(parts(a), std::pair(false, false));
  a.kernel = AttentionKernel::kMma;
  EXPECT_EQ(parts(a), std::pair(true, true));
  EXPECT_TRUE(check_paged_attention(a).is_ok()) << check_paged_attention(a).message();

  a = good_attention();
  a.base.out.dtype = DType::kF32;
  EXPECT_EQ(parts(a), std::pair(false, false));

  a = good_attention();  // a group of 4: decodes on SIMT, prefill chunks on tensor cores
  a.base.q = fake(0x10000000, DType::kBF16, {5, 8, 512});
  a.base.out = fake(0x20000000, DType::kBF16, {5, 8, 512});
  EXPECT_EQ(parts(a), std::pair(false, true));

  a = good_attention();
  a.base.q = fake(0x10000000, DType::kBF16, {5, 16, 128});
  a.base.out = fake(0x20000000, DType::kBF16, {5, 16, 128});
  a.base.k_cache = fake(0x30000000, DType::kBF16, {1024, 2, 128});
  a.base.v_cache = fake(0x40000000, DType::kBF16, {1024, 2, 128});
  EXPECT_EQ(parts(a), std::pair(false, false));
  a.kernel = AttentionKernel::kMma;
  expect_invalid(check_paged_attention(a), {"kernel is kMma with a bf16 cache and head_dim 128",
                                            "bf16 cache and head_dim 256 or 512"});

  a = good_attention();
  a.base.k_cache.dtype = a.base.v_cache.dtype = DType::kF32;
  EXPECT_EQ(parts(a), std::pair(false, false));
  a.kernel = AttentionKernel::kMma;
  expect_invalid(check_paged_attention(a), {"kernel is kMma with a f32 cache"});
}

TEST(PagedAttentionCheck, WorkspaceSizing) {
  // Every batch needs the tile list; split-K partials only when decodes may split under
  // the finest policy (more than kPagedFinestSplitKeys keys).
  EXPECT_EQ(paged_attention_workspace_bytes(0, 0, 16, 512, 0), 0u);
  const size_t short_ctx = paged_attention_workspace_bytes(8, 8, 16, 512, kPagedFinestSplitKeys);
  EXPECT_GT(short_ctx, 0u);
  EXPECT_LT(short_ctx, 1024u);
  EXPECT_GT(paged_attention_workspace_bytes(8, 8, 16, 512, 8192), 8u * 16 * 512 * 4);
  EXPECT_EQ(paged_attention_max_splits(1, 100), 1);
  EXPECT_GT(paged_attention_max_splits(1, 8192), 1);
  EXPECT_LE(paged_attention_max_splits(1, 1 << 20), 64);
  EXPECT_EQ(paged_attention_max_splits(4096, 8192), 1);
  // Finer splits for one short sequence; the workspace fits the finest policy.
  EXPECT_EQ(paged_attention_max_splits(1, 512), 4);
  EXPECT_EQ(paged_attention_max_splits(1, 512, kPagedFinestSplitKeys), 16);
  EXPECT_GE(paged_attention_workspace_bytes(1, 1, 16, 512, 512), 16u * 16 * 514 * 4);
}

TEST(PagedAttentionCheck, NamesTheBadArgument) {
  CudaPagedAttentionArgs a = good_attention();
  a.base.k_cache.dtype = a.base.v_cache.dtype = DType::kF16;
  expect_invalid(check_paged_attention(a), {"paged_attention: k_cache has dtype f16"});

  a = good_attention();
  a.base.v_cache.dtype = DType::kF32;
  expect_invalid(check_paged_attention(a), {"k_cache has dtype bf16 but v_cache has f32"});

  a = good_attention();
  a.base.q.dtype = DType::kI32;
  expect_invalid(check_paged_attention(a), {"q has dtype i32; expected f32 or bf16"});

  a = good_attention();
  a.base.q = fake(0x10000000, DType::kBF16, {5, 15, 512});
  a.base.out = fake(0x20000000, DType::kBF16, {5, 15, 512});
  expect_invalid(check_paged_attention(a), {"15 query heads", "2 KV heads"});

  a = good_attention();
  a.base.q = fake(0x10000000, DType::kBF16, {5, 16, 96});
  a.base.out = fake(0x20000000, DType::kBF16, {5, 16, 96});
  a.base.k_cache = fake(0x30000000, DType::kBF16, {1024, 2, 96});
  a.base.v_cache = fake(0x40000000, DType::kBF16, {1024, 2, 96});
  expect_invalid(check_paged_attention(a), {"head_dim 96 is not supported"});

  a = good_attention();
  a.base.k_cache = fake(0x30000000, DType::kBF16, {1024, 2, 256});
  a.base.v_cache = fake(0x40000000, DType::kBF16, {1024, 2, 256});
  expect_invalid(check_paged_attention(a), {"k_cache has shape [1024, 2, 256]", "head_dim"});

  a = good_attention();
  a.base.out = fake(0x20000000, DType::kBF16, {4, 16, 512});
  expect_invalid(check_paged_attention(a), {"out has [4, 16, 512]"});

  a = good_attention();
  a.workspace = fake(0x60000000, DType::kI32, {16});
  expect_invalid(check_paged_attention(a),
                 {"workspace has shape [16] (64 bytes)", "paged_attention_workspace_bytes"});

  a = good_attention();
  a.workspace = Tensor{};
  expect_invalid(check_paged_attention(a), {"workspace is undefined"});

  a = good_attention();
  a.query_start = fake(0x50005000, DType::kI32, {3});
  expect_invalid(check_paged_attention(a), {"query_start has shape [3]", "contiguous [4]"});

  a = good_attention();
  a.base.seq_lens.device = Device::kCpu;
  expect_invalid(check_paged_attention(a), {"seq_lens is in host memory"});

  a = good_attention();
  a.base.block_tables.dtype = DType::kF32;
  expect_invalid(check_paged_attention(a), {"block_tables has dtype f32"});

  a = good_attention();
  a.base.block_size = 4;
  expect_invalid(check_paged_attention(a), {"block_size is 4"});

  a = good_attention();
  a.base.block_size = 48;  // does not divide 1024 slots
  expect_invalid(check_paged_attention(a), {"block_size is 48 with 1024 cache slots"});

  a = good_attention();
  a.max_query_len = 6;
  expect_invalid(check_paged_attention(a), {"max_query_len is 6 for 5 query tokens"});

  a = good_attention();
  a.max_seq_len = 64 * 16 + 1;
  expect_invalid(check_paged_attention(a), {"max_seq_len is 1025"});

  a = good_attention();
  a.split_keys = 16;
  expect_invalid(check_paged_attention(a), {"split_keys is 16", "0 (the default policy) or 32"});

  a = good_attention();
  a.base.window = -1;
  expect_invalid(check_paged_attention(a), {"window is -1"});

  a = good_attention();
  a.base.softcap = -1.0f;
  expect_invalid(check_paged_attention(a), {"softcap is -1"});

  a = good_attention();
  a.base.out = a.base.q;
  expect_invalid(check_paged_attention(a), {"out overlaps q"});

  a = good_attention();
  a.base.k_cache = fake(0x30000000, DType::kBF16, {1024, 2, 512});
  a.base.k_cache.strides[0] = 2 * 512 + 8;  // padded rows: not a contiguous pool
  expect_invalid(check_paged_attention(a), {"k_cache with shape [1024, 2, 512] is not contiguous"});
}

TEST(PagedAttentionCheckDeathTest, LauncherAbortsNamingTheArgument) {
  CudaPagedAttentionArgs a = good_attention();
  a.base.block_size = 4;
  EXPECT_DEATH(paged_attention(a, nullptr), "paged_attention: block_size is 4");
}

CacheWriteArgs good_cache_write() {
  CacheWriteArgs a;
  a.k = fake(0x10000000, DType::kF32, {7, 8, 256});
  a.v = fake(0x20000000, DType::kF32, {7, 8, 256});
  a.k_cache = fake(0x30000000, DType::kBF16, {4096, 8, 256});
  a.v_cache = fake(0x40000000, DType::kBF16, {4096, 8, 256});
  a.slots = fake(0x50000000, DType::kI32, {7});
  return a;
}

TEST(CacheWriteCheck, AcceptsValidArguments) {
  EXPECT_TRUE(check_cache_write(good_cache_write()).is_ok());
  CacheWriteArgs a = good_cache_write();
  a.k.dtype = DType::kBF16;  // k and v dtypes are independent
  EXPECT_TRUE(check_cache_write(a).is_ok());
}

TEST(CacheWriteCheck, NamesTheBadArgument) {
  CacheWriteArgs a = good_cache_write();
  a.k_cache.dtype = a.v_cache.dtype = DType::kF16;
  expect_invalid(check_cache_write(a), {"cache_write: k_cache has dtype f16"});

  a = good_cache_write();
  a.v_cache.dtype = DType::kF32;
  expect_invalid(check_cache_write(a), {"k_cache has dtype bf16 but v_cache has f32"});

  a = good_cache_write();
  a.k_cache = fake(0x30000000, DType::kBF16, {4096, 4, 256});
  a.v_cache = fake(0x40000000, DType::kBF16, {4096, 4, 256});
  expect_invalid(check_cache_write(a), {"k has shape [7, 8, 256] but k_cache has [4096, 4, 256]"});

  a = good_cache_write();
  a.v = fake(0x20000000, DType::kF32, {6, 8, 256});
  expect_invalid(check_cache_write(a), {"k has shape [7, 8, 256] but v has [6, 8, 256]"});

  a = good_cache_write();
  a.slots = fake(0x50000000, DType::kI32, {7}, Device::kCpu);
  expect_invalid(check_cache_write(a), {"slots is in host memory"});

  a = good_cache_write();
  a.slots = fake(0x50000000, DType::kI32, {8});
  expect_invalid(check_cache_write(a), {"slots has shape [8]", "contiguous [7]"});

  a = good_cache_write();
  a.k.strides[2] = 2;
  expect_invalid(check_cache_write(a), {"k has stride 2 in its last dimension"});

  a = good_cache_write();
  a.v_cache = a.k_cache;
  expect_invalid(check_cache_write(a), {"k_cache overlaps v_cache"});
}

}  // namespace
}  // namespace sluice::kernels::cuda
