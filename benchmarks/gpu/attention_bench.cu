// Paged attention (kernels/cuda/paged_attention.h) against the memory ceiling.
//
//  1. Ceiling: a device-to-device cudaMemcpyAsync of a 2 GiB buffer, counting bytes read
//     plus written.
//  2. Decode: one query token per sequence over a bf16 paged cache (block size 16) at the
//     Gemma 4 26B-A4B layer shapes: sliding (head_dim 256, 16 query / 8 KV heads) and global
//     (head_dim 512, 16 query / 2 KV heads); batch 1, 4, 16, 64, 256 at contexts 512, 2048,
//     8192 (combos whose K+V exceed ~40 GiB are skipped). Block tables are random
//     permutations of the block ids. Per point: median ms, the K+V bytes the step must read,
//     GB/s, and the fraction of the copy ceiling, for each decode kernel (rows
//     decode_<layer>_simt and decode_<layer>_mma). Steps are timed as CUDA graph replays
//     (how the engine runs decode). Caches smaller than 1 GiB are rotated among disjoint
//     block sets, one step per set in the graph, so each step reads its keys from device
//     memory, not from L2.
//  3. Decode split policy: batch 1 and 4 at contexts 512 and 2048, the fewest keys per split
//     at 32, 64 and the default 128 (rows decode_split_<layer>).
//  4. Prefill: one 2048-token prompt (causal, no window) at both head dims, in TFLOP/s
//     (4 * heads * head_dim flops per visible (query, key) pair), for each kernel.
// All cache and query values are uniform random (fill_uniform).

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/paged_attention.h"

namespace sluice::bench {
namespace {

constexpr int kBlockSize = 16;
constexpr size_t kMaxKvBytes = size_t{40} << 30;
constexpr size_t kRotateBytes = size_t{1} << 30;  // distinct K+V bytes per rotation cycle
constexpr int kMaxRotations = 512;

void fill_random(const DeviceBuffer& b, uint64_t seed, cudaStream_t stream) {
  b.fill_uniform(DType::kBF16, seed, -1.0f, 1.0f, stream);
}

std::unique_ptr<DeviceBuffer> upload_ints(const std::vector<int32_t>& v, cudaStream_t stream) {
  auto b = std::make_unique<DeviceBuffer>(v.size() * sizeof(int32_t));
  b->upload(v.data(), v.size() * sizeof(int32_t), stream);
  return b;
}

Tensor ints(const DeviceBuffer& b, std::initializer_list<int64_t> shape) {
  return b.view(DType::kI32, shape);
}

double bench_copy(const BenchArgs& args, cudaStream_t stream, Report& report) {
  const size_t bytes = args.quick ? (size_t{1} << 30) : (size_t{2} << 30);
  const CopyTiming copy = time_copy(bytes, stream, args.quick ? 5 : 10);
  report.add({"copy_d2d",
              {{"mib", static_cast<double>(bytes >> 20)}},
              {{"ms", copy.ms}, {"gb_per_s", copy.gb_per_s}}});
  return copy.gb_per_s;
}

struct Layer {
  const char* name;
  int head_dim, num_q_heads, num_kv_heads;
};
constexpr Layer kSliding{"sliding", 256, 16, 8};
constexpr Layer kGlobal{"global", 512, 16, 2};

// The bf16 K and V pools every point carves its cache out of (random once).
struct Pool {
  std::unique_ptr<DeviceBuffer> k, v;
  Tensor cache(const DeviceBuffer& b, const Layer& l, int64_t num_blocks) const {
    return b.view(DType::kBF16, {num_blocks * kBlockSize, l.num_kv_heads, l.head_dim});
  }
};

// One batch of `batch` sequences: the device tensors of paged_attention, with `sets`
// block tables over disjoint random blocks (all in the pool).
struct Batch {
  std::unique_ptr<DeviceBuffer> q, out, positions, token_seq, seq_lens, query_start, tables,
      workspace;
  int64_t blocks_per_seq = 0;
  int sets = 1;
  kc::CudaPagedAttentionArgs args;
};

// Decode when queries_per_seq == 1 (positions context - 1); a prefill chunk of all
// `context` tokens of one prompt otherwise.
Batch make_batch(const Pool& pool, const Layer& l, int batch, int context, int queries_per_seq,
                 int sets, std::mt19937& rng, cudaStream_t stream) {
  Batch b;
  b.sets = sets;
  b.blocks_per_seq = (context + kBlockSize - 1) / kBlockSize;
  const int64_t num_blocks = b.blocks_per_seq * batch * sets;
  const int64_t n = static_cast<int64_t>(batch) * queries_per_seq;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> positions, token_seq, seq_lens(batch, context), query_start(batch + 1);
  for (int s = 0; s < batch; ++s) {
    query_start[s] = static_cast<int32_t>(token_seq.size());
    for (int i = 0; i < queries_per_seq; ++i) {
      token_seq.push_back(s);
      positions.push_back(context - queries_per_seq + i);
    }
  }
  query_start[batch] = static_cast<int32_t>(n);
  const size_t q_bytes = static_cast<size_t>(n) * l.num_q_heads * l.head_dim * 2;
  b.q = std::make_unique<DeviceBuffer>(q_bytes);
  b.out = std::make_unique<DeviceBuffer>(q_bytes);
  fill_random(*b.q, 7, stream);
  b.positions = upload_ints(positions, stream);
  b.token_seq = upload_ints(token_seq, stream);
  b.seq_lens = upload_ints(seq_lens, stream);
  b.query_start = upload_ints(query_start, stream);
  b.tables = upload_ints(perm, stream);  // set i: rows [i * batch, (i + 1) * batch)
  const size_t ws = kc::paged_attention_workspace_bytes(static_cast<int>(n), batch, l.num_q_heads,
                                                        l.head_dim, context);
  b.workspace = std::make_unique<DeviceBuffer>(ws);

  kc::CudaPagedAttentionArgs& a = b.args;
  a.base.q = b.q->view(DType::kBF16, {n, l.num_q_heads, l.head_dim});
  a.base.out = b.out->view(DType::kBF16, {n, l.num_q_heads, l.head_dim});
  a.base.k_cache = pool.cache(*pool.k, l, num_blocks);
  a.base.v_cache = pool.cache(*pool.v, l, num_blocks);
  a.base.token_seq = ints(*b.token_seq, {n});
  a.base.q_positions = ints(*b.positions, {n});
  a.base.block_tables = ints(*b.tables, {batch, b.blocks_per_seq});
  a.base.seq_lens = ints(*b.seq_lens, {batch});
  a.base.block_size = kBlockSize;
  a.base.scale = 1.0f / std::sqrt(static_cast<float>(l.head_dim));
  a.query_start = ints(*b.query_start, {batch + 1});
  a.max_query_len = queries_per_seq;
  a.max_seq_len = context;
  a.workspace = b.workspace->view(DType::kI32, {static_cast<int64_t>((ws + 3) / 4)});
  return b;
}

// Queues paged_attention over block set `set`.
void enqueue_set(const Batch& b, int set, cudaStream_t s) {
  kc::CudaPagedAttentionArgs a = b.args;
  const int64_t rows = a.base.block_tables.shape[0];
  a.base.block_tables.data =
      static_cast<int32_t*>(b.tables->data()) + static_cast<int64_t>(set) * rows * b.blocks_per_seq;
  kc::paged_attention(a, s);
}

// Median ms of one step, timed as replays of a CUDA graph of one step per block set (how
// the engine runs decode, and free of host launch gaps), divided by the number of sets.
double graph_step_ms(const Batch& b, cudaStream_t stream, int reps) {
  const auto enqueue = [&](cudaStream_t s) {
    for (int set = 0; set < b.sets; ++set) enqueue_set(b, set, s);
  };
  return graph_median_ms(enqueue, stream, 2, reps) / b.sets;
}

size_t kv_bytes(const Layer& l, int batch, int context) {
  return static_cast<size_t>(batch) * context * l.num_kv_heads * l.head_dim * 2 * 2;
}

int rotations(size_t bytes) {
  const auto r = static_cast<int>((kRotateBytes + bytes - 1) / bytes);
  return std::clamp(r, 1, kMaxRotations);
}

struct Point {
  const Layer* layer;
  int batch, context;
};

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using namespace sluice::bench;
  const Session session(argc, argv);
  Report report("paged attention: decode and prefill over a bf16 paged KV cache");
  const double copy_gb_per_s = bench_copy(session.args, session.stream, report);

  std::vector<Point> points;
  if (session.args.quick) {
    points = {{&kSliding, 16, 8192}, {&kGlobal, 16, 8192}, {&kGlobal, 64, 2048}};
  } else {
    for (const Layer* l : {&kSliding, &kGlobal}) {
      for (int batch : {1, 4, 16, 64, 256}) {
        for (int context : {512, 2048, 8192}) {
          if (kv_bytes(*l, batch, context) <= kMaxKvBytes) points.push_back({l, batch, context});
        }
      }
    }
  }
  // One pool (per K and per V) large enough for every point's rotated block sets.
  size_t pool_bytes = 0;
  for (const Point& p : points) {
    const size_t bytes = kv_bytes(*p.layer, p.batch, p.context);
    pool_bytes = std::max(pool_bytes, bytes * rotations(bytes) / 2);
  }
  const size_t prefill_bytes =
      std::max(kv_bytes(kSliding, 1, 2048), kv_bytes(kGlobal, 1, 2048)) / 2;
  pool_bytes = std::max(pool_bytes, prefill_bytes) + (size_t{1} << 20);
  Pool pool;
  pool.k = std::make_unique<DeviceBuffer>(pool_bytes);
  pool.v = std::make_unique<DeviceBuffer>(pool_bytes);
  fill_random(*pool.k, 11, session.stream);
  fill_random(*pool.v, 12, session.stream);
  SLUICE_CUDA_CHECK(cudaStreamSynchronize(session.stream));

  std::mt19937 rng(2024);
  const int reps = session.args.quick ? 5 : 20;
  for (const Point& p : points) {
    const size_t bytes = kv_bytes(*p.layer, p.batch, p.context);
    Batch b =
        make_batch(pool, *p.layer, p.batch, p.context, 1, rotations(bytes), rng, session.stream);
    // Both decode kernels side by side (the engine's choice: paged_attention_mma_parts).
    for (const kc::AttentionKernel kernel :
         {kc::AttentionKernel::kSimt, kc::AttentionKernel::kMma}) {
      b.args.kernel = kernel;
      const double ms = graph_step_ms(b, session.stream, reps);
      const double gb_per_s = static_cast<double>(bytes) / ms / 1e6;
      report.add({std::string("decode_") + p.layer->name +
                      (kernel == kc::AttentionKernel::kMma ? "_mma" : "_simt"),
                  {{"head_dim", p.layer->head_dim},
                   {"batch", p.batch},
                   {"context", p.context},
                   {"splits", kc::paged_attention_max_splits(p.batch, p.context)}},
                  {{"ms", ms},
                   {"kv_mb", static_cast<double>(bytes) / 1e6},
                   {"gb_per_s", gb_per_s},
                   {"frac_copy", gb_per_s / copy_gb_per_s}}});
    }
  }

  // The split policy at small batches (short contexts are latency-bound): the default
  // (kPagedMinSplitKeys keys a part at least) against finer ones, on the engine's kernel.
  for (const Layer* l : {&kSliding, &kGlobal}) {
    for (int batch : {1, 4}) {
      for (int context : {512, 2048}) {
        const size_t bytes = kv_bytes(*l, batch, context);
        Batch b = make_batch(pool, *l, batch, context, 1, rotations(bytes), rng, session.stream);
        for (int split_keys : {kc::kPagedFinestSplitKeys, 64, kc::kPagedMinSplitKeys}) {
          b.args.split_keys = split_keys;
          const double ms = graph_step_ms(b, session.stream, reps);
          report.add({std::string("decode_split_") + l->name,
                      {{"batch", batch},
                       {"context", context},
                       {"split_keys", split_keys},
                       {"splits", kc::paged_attention_max_splits(batch, context, split_keys)}},
                      {{"ms", ms}, {"us", ms * 1000.0}}});
        }
      }
    }
  }

  constexpr int kPrompt = 2048;
  for (const Layer* l : {&kSliding, &kGlobal}) {
    Batch b = make_batch(pool, *l, 1, kPrompt, kPrompt, 1, rng, session.stream);
    for (const kc::AttentionKernel kernel :
         {kc::AttentionKernel::kSimt, kc::AttentionKernel::kMma}) {
      b.args.kernel = kernel;
      const double ms = median_ms([&](cudaStream_t s) { enqueue_set(b, 0, s); }, session.stream, 2,
                                  session.args.quick ? 3 : 10);
      const double pairs = static_cast<double>(kPrompt) * (kPrompt + 1) / 2;
      const double tflops = 4.0 * l->num_q_heads * l->head_dim * pairs / ms / 1e9;
      report.add({std::string("prefill_") + l->name +
                      (kernel == kc::AttentionKernel::kMma ? "_mma" : "_simt"),
                  {{"head_dim", l->head_dim}, {"tokens", kPrompt}},
                  {{"ms", ms}, {"tflop_per_s", tflops}}});
    }
  }

  return session.finish(report);
}
