// Attention over the paged KV cache on the CPU (contract in kernels/ops.h,
// PagedAttentionArgs).
//
// The batch is planned as units of work: one unit is one query token and one KV head, with
// all the query heads of that KV group, over a range of the token's visible keys. A unit
// walks its keys in chunks of up to kKeyChunk; each chunk is a list of segments (runs of
// consecutive cache slots, read straight from the sequence's blocks through its block-table
// row, with no gather). The query heads of the group go through each chunk together, so each
// K and V row is read once for all of them: scores (dot_rows_multi), soft-cap, online
// softmax per head (running max and sum, rescaling the accumulator when the max rises) and
// the exp-weighted values (weighted_sum_rows_multi), all f32, as in attention.cpp.
//
// Split-K: the only query of its sequence in the batch (a decode) with more than
// kSplitMinKeys visible keys gets several units over disjoint key ranges, so one long decode
// keeps every thread busy. Each such unit leaves its unnormalised state (max, sum,
// accumulator) in a partial buffer, and a merge pass combines them with the log-sum-exp
// rule. Whether and how a query splits depends only on its own keys and on its sequence's
// share of the batch, never on the thread count, so results do not depend on threads.
//
// Units are spread over the threads by cost (keys plus a fixed overhead), in contiguous
// ranges of equal cost: a long prefill token weighs more than a short one.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/arg_checks.h"
#include "kernels/cpu/paged_ops.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::cpu {
namespace {

constexpr const char* kOp = "paged_attention";
// Keys per chunk (as in attention.cpp, so one sequence gives the same bits as that op).
constexpr int64_t kKeyChunk = 256;
// A decode query splits its keys once it sees more than this many.
constexpr int64_t kSplitMinKeys = 1024;
// At most this many keys per split, in a multiple of kSplitMultiple splits (so that 2 or 4
// threads share one decode evenly), at most kMaxSplits.
constexpr int64_t kSplitKeys = 512;
constexpr int64_t kSplitMultiple = 4;
constexpr int64_t kMaxSplits = 32;
// Rows of the next segment prefetched ahead (see prefetch_start).
constexpr int64_t kPrefetchRows = 2;
// The fixed cost of one unit, in keys, when balancing the threads.
constexpr int64_t kUnitOverheadKeys = 32;

struct Unit {
  int32_t token, kv_head;
  int64_t key_begin, key_end;  // visible key positions [begin, end) of the token's sequence
  int64_t partial;             // index of the unit's partial state; -1: writes `out` itself
};

// The partial states [first, first + num) of one split (token, KV head), to merge.
struct Merge {
  int32_t token, kv_head;
  int64_t first, num;
};

struct Segment {
  int64_t slot, len;  // keys in slots [slot, slot + len)
};

// The plan of one call; thread_local so that steady-state calls allocate nothing.
struct Plan {
  std::vector<Unit> units;
  std::vector<int64_t> cost_prefix;  // [units + 1]: cost of the units before each one
  std::vector<Merge> merges;
  std::vector<int32_t> seq_queries;  // queries per sequence in this batch
  int64_t num_partials = 0;
};
thread_local Plan tls_plan;

struct Ctx {
  const IsaKernels& kern;
  const float* q;
  int64_t q_s0, q_s1;
  float* out;
  int64_t out_s0, out_s1;
  const float* k_cache;
  const float* v_cache;
  int64_t row_stride;  // elements between consecutive slots: nkv * d
  const int32_t* tables;
  int64_t table_stride;
  const int32_t* token_seq;
  int64_t block_size, num_blocks, group, d;
  float scale, cap;
  float* partials;
  int64_t state_floats;  // per unit: max[group], sum[group], acc[group][d]
};

// The segments holding keys [j0, j1) of sequence s (read by `token`): one per block, merged
// where the next block follows in the cache. Checks every block id read.
int64_t collect_segments(const Ctx& c, int64_t token, int64_t s, int64_t j0, int64_t j1,
                         Segment* segs) {
  const int32_t* row = c.tables + s * c.table_stride;
  int64_t num = 0;
  for (int64_t j = j0; j < j1;) {
    const int64_t b = j / c.block_size, off = j % c.block_size;
    const int32_t id = row[b];
    SLUICE_CHECK(id >= 0 && id < c.num_blocks,
                 "{}: sequence {}: block_tables[{}, {}] = {} is outside [0, {}) but holds key {} "
                 "visible to token {}",
                 kOp, s, s, b, id, c.num_blocks, j, token);
    const int64_t slot = id * c.block_size + off;
    const int64_t len = std::min(c.block_size - off, j1 - j);
    if (num > 0 && segs[num - 1].slot + segs[num - 1].len == slot) {
      segs[num - 1].len += len;
    } else {
      segs[num++] = {slot, len};
    }
    j += len;
  }
  return num;
}

// Asks for the first rows of `seg` (d floats each, from `base`) to be brought into L2 while
// the previous segment is in use: the hardware prefetcher does not follow the jump to another
// block, and once the first rows are under way it picks up the rest (measured: about 10%
// faster decode over shuffled blocks; prefetching whole blocks was slower).
void prefetch_start(const float* base, int64_t row_stride, int64_t d, const Segment& seg) {
  for (int64_t r = 0; r < std::min(seg.len, kPrefetchRows); ++r) {
    const char* row = reinterpret_cast<const char*>(base + (seg.slot + r) * row_stride);
    for (int64_t b = 0; b < d * static_cast<int64_t>(sizeof(float)); b += 64) {
      __builtin_prefetch(row + b, 0, 2);
    }
  }
}

void run_unit(const Ctx& c, const Unit& u, float* scores, float* scratch_state) {
  const int64_t t = u.token, d = c.d, group = c.group;
  const int64_t s = c.token_seq[t];
  float* state = u.partial >= 0 ? c.partials + u.partial * c.state_floats : scratch_state;
  float* running_max = state;
  float* running_sum = state + group;
  float* acc = state + 2 * group;
  std::fill(running_max, running_max + group, -std::numeric_limits<float>::infinity());
  std::fill(running_sum, running_sum + group, 0.0f);
  std::fill(acc, acc + group * d, 0.0f);
  const float* kg = c.k_cache + u.kv_head * d;
  const float* vg = c.v_cache + u.kv_head * d;
  const float* q0 = c.q + t * c.q_s0 + u.kv_head * group * c.q_s1;
  Segment segs[kKeyChunk];
  for (int64_t j0 = u.key_begin; j0 < u.key_end; j0 += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, u.key_end - j0);
    const int64_t num_segs = collect_segments(c, t, s, j0, j0 + n, segs);
    for (int64_t g = 0, j = 0; g < num_segs; j += segs[g++].len) {
      if (g + 1 < num_segs) prefetch_start(kg, c.row_stride, d, segs[g + 1]);
      c.kern.dot_rows_multi(q0, c.q_s1, group, kg + segs[g].slot * c.row_stride, c.row_stride,
                            segs[g].len, d, scores + j, kKeyChunk);
    }
    for (int64_t i = 0; i < group; ++i) {
      float* scores_i = scores + i * kKeyChunk;
      float chunk_max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        float x = scores_i[j] * c.scale;
        if (c.cap > 0.0f) x = c.cap * std::tanh(x / c.cap);
        scores_i[j] = x;
        chunk_max = std::max(chunk_max, x);
      }
      if (chunk_max > running_max[i]) {
        if (running_sum[i] > 0.0f) {
          const float rescale = std::exp(running_max[i] - chunk_max);
          running_sum[i] *= rescale;
          for (int64_t e = 0; e < d; ++e) acc[i * d + e] *= rescale;
        }
        running_max[i] = chunk_max;
      }
      running_sum[i] += c.kern.exp_sum(scores_i, n, running_max[i], scores_i);
    }
    for (int64_t g = 0, j = 0; g < num_segs; j += segs[g++].len) {
      if (g + 1 < num_segs) prefetch_start(vg, c.row_stride, d, segs[g + 1]);
      c.kern.weighted_sum_rows_multi(scores + j, kKeyChunk, group, vg + segs[g].slot * c.row_stride,
                                     c.row_stride, segs[g].len, d, acc, d);
    }
  }
  if (u.partial >= 0) return;
  for (int64_t i = 0; i < group; ++i) {
    float* o = c.out + t * c.out_s0 + (u.kv_head * group + i) * c.out_s1;
    const float inv = 1.0f / running_sum[i];
    for (int64_t e = 0; e < d; ++e) o[e] = acc[i * d + e] * inv;
  }
}

// out = sum_k exp(m_k - M) acc_k / sum_k exp(m_k - M) s_k over the partial states k of one
// (token, KV head), M = max_k m_k, per query head.
void merge_partials(const Ctx& c, const Merge& m) {
  for (int64_t i = 0; i < c.group; ++i) {
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < m.num; ++k) {
      max = std::max(max, c.partials[(m.first + k) * c.state_floats + i]);
    }
    float* o = c.out + m.token * c.out_s0 + (m.kv_head * c.group + i) * c.out_s1;
    std::fill(o, o + c.d, 0.0f);
    float sum = 0.0f;
    for (int64_t k = 0; k < m.num; ++k) {
      const float* state = c.partials + (m.first + k) * c.state_floats;
      const float w = std::exp(state[i] - max);
      sum += w * state[c.group + i];
      const float* acc = state + 2 * c.group + i * c.d;
      for (int64_t e = 0; e < c.d; ++e) o[e] += w * acc[e];
    }
    const float inv = 1.0f / sum;
    for (int64_t e = 0; e < c.d; ++e) o[e] *= inv;
  }
}

// Fills `plan` with the units and merges of the batch (arguments already checked).
void make_plan(const PagedAttentionArgs& args, int64_t nkv, Plan& plan) {
  const int64_t n = args.q.dim(0);
  const int32_t* token_seq = args.token_seq.ptr<int32_t>();
  const int32_t* positions = args.q_positions.ptr<int32_t>();
  plan.units.clear();
  plan.merges.clear();
  plan.num_partials = 0;
  plan.seq_queries.assign(static_cast<size_t>(args.seq_lens.dim(0)), 0);
  for (int64_t t = 0; t < n; ++t) ++plan.seq_queries[token_seq[t]];
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = positions[t];
    const int64_t first = args.window > 0 ? std::max<int64_t>(0, pos - args.window + 1) : 0;
    const int64_t keys = pos + 1 - first;
    int64_t splits = 1;
    if (plan.seq_queries[token_seq[t]] == 1 && keys > kSplitMinKeys) {
      const int64_t wanted = (keys + kSplitKeys - 1) / kSplitKeys;
      splits =
          std::min(kMaxSplits, (wanted + kSplitMultiple - 1) / kSplitMultiple * kSplitMultiple);
    }
    for (int64_t g = 0; g < nkv; ++g) {
      if (splits > 1) {
        plan.merges.push_back(
            {static_cast<int32_t>(t), static_cast<int32_t>(g), plan.num_partials, splits});
      }
      for (int64_t i = 0; i < splits; ++i) {
        plan.units.push_back({static_cast<int32_t>(t), static_cast<int32_t>(g),
                              first + keys * i / splits, first + keys * (i + 1) / splits,
                              splits > 1 ? plan.num_partials++ : -1});
      }
    }
  }
  plan.cost_prefix.resize(plan.units.size() + 1);
  plan.cost_prefix[0] = 0;
  for (size_t u = 0; u < plan.units.size(); ++u) {
    const Unit& unit = plan.units[u];
    plan.cost_prefix[u + 1] =
        plan.cost_prefix[u] + unit.key_end - unit.key_begin + kUnitOverheadKeys;
  }
}

}  // namespace

void run_paged_attention(const PagedAttentionArgs& args, const IsaKernels& kern) {
  check_tensor(args.q, kOp, "q", DType::kF32, 3);
  check_tensor(args.out, kOp, "out", DType::kF32, 3);
  check_tensor(args.k_cache, kOp, "k_cache", DType::kF32, 3);
  check_tensor(args.v_cache, kOp, "v_cache", DType::kF32, 3);
  check_tensor(args.token_seq, kOp, "token_seq", DType::kI32, 1);
  check_tensor(args.q_positions, kOp, "q_positions", DType::kI32, 1);
  check_tensor(args.block_tables, kOp, "block_tables", DType::kI32, 2);
  check_tensor(args.seq_lens, kOp, "seq_lens", DType::kI32, 1);
  check_contiguous(args.k_cache, kOp, "k_cache");
  check_contiguous(args.v_cache, kOp, "v_cache");
  check_same_shape(args.q, args.out, kOp, "q", "out");
  check_same_shape(args.k_cache, args.v_cache, kOp, "k_cache", "v_cache");
  const int64_t n = args.q.dim(0), nq = args.q.dim(1), d = args.q.dim(2);
  const int64_t num_slots = args.k_cache.dim(0), nkv = args.k_cache.dim(1);
  const int64_t num_seqs = args.seq_lens.dim(0), max_blocks = args.block_tables.dim(1);
  check_dim(args.k_cache, 2, d, kOp, "k_cache");
  check_dim(args.token_seq, 0, n, kOp, "token_seq");
  check_dim(args.q_positions, 0, n, kOp, "q_positions");
  check_dim(args.block_tables, 0, num_seqs, kOp, "block_tables");
  SLUICE_CHECK(nkv > 0 && nq % nkv == 0, "{}: {} query heads are not a multiple of {} KV heads",
               kOp, nq, nkv);
  SLUICE_CHECK(args.block_size > 0 && num_slots % args.block_size == 0,
               "{}: block_size {} must be positive and divide the cache's {} slots", kOp,
               args.block_size, num_slots);
  SLUICE_CHECK(args.window >= 0, "{}: window {} is negative", kOp, args.window);
  SLUICE_CHECK(args.softcap >= 0.0f, "{}: softcap {} is negative", kOp, args.softcap);
  const int32_t* seq_lens = args.seq_lens.ptr<int32_t>();
  for (int64_t s = 0; s < num_seqs; ++s) {
    SLUICE_CHECK(seq_lens[s] >= 0 && seq_lens[s] <= max_blocks * args.block_size,
                 "{}: seq_lens[{}] = {} does not fit its block-table row of {} blocks of {}", kOp,
                 s, seq_lens[s], max_blocks, args.block_size);
  }
  const int32_t* token_seq = args.token_seq.ptr<int32_t>();
  const int32_t* positions = args.q_positions.ptr<int32_t>();
  for (int64_t t = 0; t < n; ++t) {
    const int32_t s = token_seq[t];
    SLUICE_CHECK(s >= 0 && s < num_seqs, "{}: token_seq[{}] = {} is outside the {} sequences", kOp,
                 t, s, num_seqs);
    SLUICE_CHECK(positions[t] >= 0 && positions[t] < seq_lens[s],
                 "{}: q_positions[{}] = {} is outside the {} cached keys of sequence {}", kOp, t,
                 positions[t], seq_lens[s], s);
  }
  if (n == 0 || nq == 0 || d == 0) return;

  Plan& plan = tls_plan;
  make_plan(args, nkv, plan);
  const int64_t group = nq / nkv;
  const int64_t state_floats = group * (d + 2);
  float* partials = plan.num_partials > 0
                        ? scratch_floats(3, static_cast<size_t>(plan.num_partials * state_floats))
                        : nullptr;
  const Ctx c{kern,
              f32_data(args.q),
              args.q.strides[0],
              args.q.strides[1],
              f32_data(args.out),
              args.out.strides[0],
              args.out.strides[1],
              f32_data(args.k_cache),
              f32_data(args.v_cache),
              nkv * d,
              args.block_tables.ptr<int32_t>(),
              args.block_tables.strides[0],
              token_seq,
              args.block_size,
              num_slots / args.block_size,
              group,
              d,
              args.scale,
              args.softcap,
              partials,
              state_floats};

  // Part p of num_parts runs the units whose cost prefix lies in [total p, total (p+1)) /
  // num_parts, so each part costs about the same.
  const int64_t num_units = static_cast<int64_t>(plan.units.size());
  const int64_t num_parts = std::min<int64_t>(num_threads(), num_units);
  const int64_t total = plan.cost_prefix.back();
  auto part_start = [&](int64_t p) {
    return std::lower_bound(plan.cost_prefix.begin(), plan.cost_prefix.end(),
                            total * p / num_parts) -
           plan.cost_prefix.begin();
  };
  parallel_for(num_parts, [&](int64_t begin, int64_t end) {
    float* scores = scratch_floats(0, static_cast<size_t>(group * kKeyChunk));
    float* state = scratch_floats(1, static_cast<size_t>(state_floats));
    for (int64_t u = part_start(begin), last = part_start(end); u < last; ++u) {
      run_unit(c, plan.units[u], scores, state);
    }
  });
  parallel_for(
      static_cast<int64_t>(plan.merges.size()),
      [&](int64_t begin, int64_t end) {
        for (int64_t m = begin; m < end; ++m) merge_partials(c, plan.merges[m]);
      },
      8);
}

}  // namespace sluice::kernels::cpu
