// paged_attention against a double-precision reference that first gathers each sequence's K
// and V into contiguous arrays: mixed batches of prefill chunks (queries at ctx..ctx+T-1
// over already cached context) and decodes of several sequences, GQA groups 1/2/4/8,
// sliding windows with out-of-window block-table entries set to -1, soft-cap, block sizes
// 1/16/32, randomly permuted physical blocks (unused cache memory is NaN, so a wrong read
// shows), contexts long enough for split-K, head dims 32/64/256/512; thread-count
// independence; agreement with the contiguous attention op; and the multi-row leaf kernels.

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "kernel_test_util.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::testing {
namespace {

struct SeqSpec {
  int64_t ctx;          // keys cached before this step
  int64_t num_queries;  // queries at positions ctx .. ctx + num_queries - 1
};

struct Case {
  std::vector<SeqSpec> seqs;
  int64_t nq, nkv, d, block_size;
  int window = 0;
  float softcap = 0.0f;
  float scale = 0.25f;
  bool shuffle_tokens = false;
};

std::string describe(const Case& c) {
  std::string s = "seqs=";
  for (const SeqSpec& q : c.seqs) {
    s += "(" + std::to_string(q.ctx) + "+" + std::to_string(q.num_queries) + ")";
  }
  return s + " nq=" + std::to_string(c.nq) + " nkv=" + std::to_string(c.nkv) +
         " d=" + std::to_string(c.d) + " block=" + std::to_string(c.block_size) +
         " window=" + std::to_string(c.window) + " softcap=" + std::to_string(c.softcap);
}

// A batch laid out in a paged cache, with each sequence's keys also kept contiguous.
struct Batch {
  int64_t num_blocks = 0, max_blocks = 0, n = 0;
  std::vector<float> k_cache, v_cache;           // [num_blocks * block_size, nkv, d]
  std::vector<std::vector<float>> k_seq, v_seq;  // per sequence [len, nkv, d]
  std::vector<int32_t> tables, seq_lens, token_seq, positions;
  std::vector<float> q;  // [n, nq, d]
};

// Physical blocks are a random permutation (or in order, with `contiguous`); two spare
// blocks and every block left out stay NaN. With a window, blocks no query can see are
// not allocated: their block-table entries are -1.
Batch make_batch(const Case& c, uint32_t seed, float magnitude = 1.0f, bool contiguous = false) {
  Batch b;
  const int64_t bs = c.block_size, row = c.nkv * c.d;
  for (const SeqSpec& s : c.seqs) {
    const int64_t len = s.ctx + s.num_queries;
    b.max_blocks = std::max(b.max_blocks, (len + bs - 1) / bs);
    b.num_blocks += (len + bs - 1) / bs;
    b.seq_lens.push_back(static_cast<int32_t>(len));
  }
  b.max_blocks += 1;  // an unused column of -1 in every row
  b.num_blocks += 2;
  std::mt19937 rng(seed);
  std::vector<int32_t> perm(static_cast<size_t>(b.num_blocks));
  std::iota(perm.begin(), perm.end(), 0);
  if (!contiguous) std::shuffle(perm.begin(), perm.end(), rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  b.k_cache.assign(static_cast<size_t>(b.num_blocks * bs * row), nan);
  b.v_cache = b.k_cache;
  b.tables.assign(static_cast<size_t>(c.seqs.size() * b.max_blocks), -1);
  size_t next = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const int64_t len = b.seq_lens[s];
    b.k_seq.push_back(
        random_floats(static_cast<size_t>(len * row), seed + 10 + 2 * s, -magnitude, magnitude));
    b.v_seq.push_back(random_floats(static_cast<size_t>(len * row), seed + 11 + 2 * s));
    const int64_t first_visible = c.window > 0 ? c.seqs[s].ctx - c.window + 1 : 0;
    for (int64_t blk = 0; blk * bs < len; ++blk) {
      if ((blk + 1) * bs <= first_visible) continue;  // left the window of every query
      const int32_t id = perm[next++];
      b.tables[s * b.max_blocks + blk] = id;
      for (int64_t j = blk * bs; j < std::min(len, (blk + 1) * bs); ++j) {
        const int64_t slot = id * bs + j % bs;
        std::copy_n(b.k_seq[s].begin() + j * row, row, b.k_cache.begin() + slot * row);
        std::copy_n(b.v_seq[s].begin() + j * row, row, b.v_cache.begin() + slot * row);
      }
    }
    for (int64_t i = 0; i < c.seqs[s].num_queries; ++i) {
      b.token_seq.push_back(static_cast<int32_t>(s));
      b.positions.push_back(static_cast<int32_t>(c.seqs[s].ctx + i));
    }
  }
  b.n = static_cast<int64_t>(b.token_seq.size());
  if (c.shuffle_tokens) {
    std::vector<size_t> order(b.token_seq.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> ts, ps;
    for (size_t i : order) {
      ts.push_back(b.token_seq[i]);
      ps.push_back(b.positions[i]);
    }
    b.token_seq = ts;
    b.positions = ps;
  }
  b.q = random_floats(static_cast<size_t>(b.n * c.nq * c.d), seed + 1, -magnitude, magnitude);
  return b;
}

// Textbook attention in double over each sequence's contiguous keys (contract in ops.h).
std::vector<double> reference(const Case& c, const Batch& b) {
  std::vector<double> out(static_cast<size_t>(b.n * c.nq * c.d), 0.0);
  const int64_t group = c.nq / c.nkv;
  for (int64_t t = 0; t < b.n; ++t) {
    const int64_t s = b.token_seq[t], p = b.positions[t];
    const float* k = b.k_seq[s].data();
    const float* v = b.v_seq[s].data();
    for (int64_t h = 0; h < c.nq; ++h) {
      const int64_t g = h / group;
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t j = 0; j < b.seq_lens[s]; ++j) {
        if (j > p || (c.window > 0 && j <= p - c.window)) continue;
        double x = 0.0;
        for (int64_t i = 0; i < c.d; ++i) {
          x += static_cast<double>(b.q[(t * c.nq + h) * c.d + i]) * k[(j * c.nkv + g) * c.d + i];
        }
        x *= c.scale;
        if (c.softcap > 0.0f) x = c.softcap * std::tanh(x / c.softcap);
        scores.push_back(x);
        keys.push_back(j);
      }
      const double max = *std::max_element(scores.begin(), scores.end());
      double sum = 0.0;
      for (double& x : scores) sum += (x = std::exp(x - max));
      for (size_t n = 0; n < keys.size(); ++n) {
        for (int64_t i = 0; i < c.d; ++i) {
          out[(t * c.nq + h) * c.d + i] += scores[n] / sum * v[(keys[n] * c.nkv + g) * c.d + i];
        }
      }
    }
  }
  return out;
}

// Runs the op; q and out are views with `pad` spare floats per token row (checked intact).
std::vector<float> run_paged(const OpTable& ops, const Case& c, Batch& b, int64_t pad = 0) {
  const int64_t bs = c.block_size, row = c.nq * c.d;
  std::vector<float> q_padded(static_cast<size_t>(b.n * (row + pad)), 0.0f);
  for (int64_t t = 0; t < b.n; ++t) {
    std::copy_n(b.q.begin() + t * row, row, q_padded.begin() + t * (row + pad));
  }
  std::vector<float> out_padded(q_padded.size(), -7.0f);
  PagedAttentionArgs args;
  args.q = strided(q_padded.data(), DType::kF32, {b.n, c.nq, c.d}, {row + pad, c.d, 1});
  args.out = strided(out_padded.data(), DType::kF32, {b.n, c.nq, c.d}, {row + pad, c.d, 1});
  args.k_cache = Tensor::make(b.k_cache.data(), DType::kF32, {b.num_blocks * bs, c.nkv, c.d});
  args.v_cache = Tensor::make(b.v_cache.data(), DType::kF32, {b.num_blocks * bs, c.nkv, c.d});
  args.token_seq = Tensor::make(b.token_seq.data(), DType::kI32, {b.n});
  args.q_positions = Tensor::make(b.positions.data(), DType::kI32, {b.n});
  const int64_t num_seqs = static_cast<int64_t>(b.seq_lens.size());
  args.block_tables = Tensor::make(b.tables.data(), DType::kI32, {num_seqs, b.max_blocks});
  args.seq_lens = Tensor::make(b.seq_lens.data(), DType::kI32, {num_seqs});
  args.block_size = static_cast<int>(bs);
  args.scale = c.scale;
  args.window = c.window;
  args.softcap = c.softcap;
  ops.paged_attention(args);
  std::vector<float> out;
  for (int64_t t = 0; t < b.n; ++t) {
    out.insert(out.end(), out_padded.begin() + t * (row + pad),
               out_padded.begin() + t * (row + pad) + row);
    for (int64_t i = row; i < row + pad; ++i) EXPECT_EQ(out_padded[t * (row + pad) + i], -7.0f);
  }
  return out;
}

class PagedAttentionTest : public IsaTest {
 protected:
  double run_case(const Case& c, uint32_t seed, float magnitude = 1.0f, int64_t pad = 0) {
    Batch b = make_batch(c, seed, magnitude);
    return rel_error(run_paged(ops(), c, b, pad), reference(c, b));
  }
};

TEST_P(PagedAttentionTest, MixedBatchesGroupsBlockSizesAndSoftcap) {
  // A prefill from scratch, a chunk over cached context, decodes (one at position 0).
  const std::vector<SeqSpec> seqs = {{0, 7}, {40, 5}, {100, 1}, {3, 1}, {0, 1}};
  uint32_t seed = 100;
  for (int64_t group : {1, 2, 4, 8}) {
    for (int64_t block_size : {1, 16, 32}) {
      for (int64_t d : {32, 64}) {
        for (float softcap : {0.0f, 2.5f}) {
          Case c{seqs, 2 * group, 2, d, block_size, 0, softcap, 0.3f, seed % 2 == 1};
          ASSERT_LE(run_case(c, seed++, 1.5f, group == 2 ? 3 : 0), kF32Tolerance) << describe(c);
        }
      }
    }
  }
}

TEST_P(PagedAttentionTest, SlidingWindowWithFreedBlocks) {
  // Blocks that left every query's window are -1 in the block table (and NaN in the cache).
  uint32_t seed = 300;
  for (int64_t block_size : {1, 16, 32}) {
    for (int window : {1, 20, 70}) {
      for (float softcap : {0.0f, 5.0f}) {
        Case c{{{130, 6}, {200, 1}, {10, 4}, {77, 1}},
               4,
               1,
               32,
               block_size,
               window,
               softcap,
               0.5f,
               true};
        ASSERT_LE(run_case(c, seed++, 1.5f), kF32Tolerance) << describe(c);
      }
    }
  }
}

TEST_P(PagedAttentionTest, GemmaHeadDimsAndSplitKeys) {
  // Decodes past kSplitMinKeys (1024) keys split their keys; a prefill chunk over the same
  // context length does not. Peaky scores make the running maximum move between chunks.
  const Case cases[] = {
      // Gemma 3 270M: batch-1 decode at ~3000 keys.
      {{{2999, 1}}, 4, 1, 256, 16, 0, 0.0f, 0.0625f},
      // Several long decodes (each split) next to a prefill chunk and a short decode.
      {{{1500, 1}, {2100, 3}, {1025, 1}, {5, 1}}, 4, 1, 256, 32, 0, 0.0f, 0.0625f},
      // Sliding window 1500 over 3000 keys with freed blocks; GQA 2, soft-cap.
      {{{3000, 1}, {2600, 2}}, 4, 2, 256, 16, 1500, 30.0f, 0.2f},
      // Gemma 4 global layer: head dim 512, 8 query heads on one KV head, scale 1.
      {{{2200, 1}, {300, 2}}, 8, 1, 512, 16, 0, 0.0f, 1.0f / 16.0f},
      // Block size 1 with a split decode.
      {{{1300, 1}}, 2, 1, 64, 1, 0, 0.0f, 0.5f},
  };
  uint32_t seed = 500;
  for (const Case& c : cases) {
    ASSERT_LE(run_case(c, seed++, 1.5f), kF32Tolerance) << describe(c);
  }
}

TEST_P(PagedAttentionTest, ResultsDoNotDependOnTheThreadCount) {
  const Case c{{{2500, 1}, {600, 9}, {30, 1}}, 4, 1, 64, 16, 0, 0.0f, 0.3f, true};
  Batch b = make_batch(c, 700);
  cpu::set_num_threads(1);
  const std::vector<float> one = run_paged(ops(), c, b);
  cpu::set_num_threads(3);
  const std::vector<float> three = run_paged(ops(), c, b);
  cpu::set_num_threads(0);
  const std::vector<float> all = run_paged(ops(), c, b);
  EXPECT_EQ(one, three);
  EXPECT_EQ(one, all);
}

TEST_P(PagedAttentionTest, MatchesContiguousAttention) {
  // One sequence: the contiguous op over its keys gives the same bits, except where a decode
  // splits its keys (merged in a different order; within 1e-6).
  struct Link {
    int64_t ctx, num_queries, block_size;
    int window;
    bool split;
  };
  for (const Link& l :
       {Link{600, 5, 16, 0, false}, Link{700, 1, 32, 300, false}, Link{1000, 1, 1, 0, false},
        Link{2000, 1, 16, 0, true}, Link{2000, 1, 16, 1800, true}}) {
    for (bool contiguous : {true, false}) {
      const Case c{{{l.ctx, l.num_queries}}, 4, 1, 256, l.block_size, l.window, 0.0f, 0.0625f};
      Batch b = make_batch(c, 800, 1.5f, contiguous);
      const std::vector<float> paged = run_paged(ops(), c, b);
      const int64_t len = b.seq_lens[0];
      std::vector<float> out(b.q.size());
      AttentionArgs args;
      args.q = Tensor::make(b.q.data(), DType::kF32, {b.n, c.nq, c.d});
      args.k = Tensor::make(b.k_seq[0].data(), DType::kF32, {len, c.nkv, c.d});
      args.v = Tensor::make(b.v_seq[0].data(), DType::kF32, {len, c.nkv, c.d});
      args.out = Tensor::make(out.data(), DType::kF32, {b.n, c.nq, c.d});
      args.q_positions = Tensor::make(b.positions.data(), DType::kI32, {b.n});
      args.scale = c.scale;
      args.window = c.window;
      ops().attention(args);
      if (l.split) {
        std::vector<double> ref(out.begin(), out.end());
        EXPECT_LE(rel_error(paged, ref), 1e-6) << describe(c);
        EXPECT_NE(paged, out) << "expected the split path: " << describe(c);
      } else {
        EXPECT_EQ(paged, out) << describe(c);
      }
    }
  }
}

TEST_P(PagedAttentionTest, MultiRowKernelsMatchTheOneRowKernels) {
  // The leaf kernels behind the op: m query rows at once give the one-row kernels' bits when
  // d is a multiple of 16, and agree to rounding in the scalar tail otherwise.
  const cpu::IsaKernels& k = kernels();
  for (int64_t m : {1, 2, 3, 4, 5, 8, 9}) {
    for (int64_t d : {1, 7, 16, 33, 100, 256}) {
      for (int64_t n : {1, 3, 4, 5, 9}) {
        const int64_t row_stride = 2 * d + 3, ldx = d + 1, ldo = n + 2;
        const std::vector<float> x = random_floats(static_cast<size_t>(m * ldx), 1);
        const std::vector<float> rows = random_floats(static_cast<size_t>(n * row_stride), 2);
        const std::vector<float> p = random_floats(static_cast<size_t>(m * ldo), 3);
        std::vector<float> multi(static_cast<size_t>(m * ldo), -1.0f), one = multi;
        k.dot_rows_multi(x.data(), ldx, m, rows.data(), row_stride, n, d, multi.data(), ldo);
        for (int64_t i = 0; i < m; ++i) {
          k.dot_rows(x.data() + i * ldx, rows.data(), row_stride, n, d, one.data() + i * ldo);
        }
        const auto same = [&](const std::vector<float>& a, const std::vector<float>& b) {
          if (d % 16 == 0) return a == b;
          return rel_error(a, std::vector<double>(b.begin(), b.end())) <= 1e-6;
        };
        ASSERT_TRUE(same(multi, one)) << "dot m=" << m << " d=" << d << " n=" << n;
        std::vector<float> acc_multi = random_floats(static_cast<size_t>(m * ldx), 4);
        std::vector<float> acc_one = acc_multi;
        k.weighted_sum_rows_multi(p.data(), ldo, m, rows.data(), row_stride, n, d, acc_multi.data(),
                                  ldx);
        for (int64_t i = 0; i < m; ++i) {
          k.weighted_sum_rows(p.data() + i * ldo, rows.data(), row_stride, n, d,
                              acc_one.data() + i * ldx);
        }
        ASSERT_TRUE(same(acc_multi, acc_one)) << "weighted sum m=" << m << " d=" << d << " n=" << n;
      }
    }
  }
}

SLUICE_INSTANTIATE_ISA_TESTS(PagedAttentionTest);

class PagedAttentionDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  // Two sequences of 40 keys in blocks of 16; the caller breaks the batch, then runs it.
  Case c{{{39, 1}, {30, 10}}, 2, 1, 8, 16, 0, 0.0f, 1.0f};
  Batch b = make_batch(c, 900);
};

TEST_F(PagedAttentionDeathTest, BlockIdOutOfRange) {
  b.tables[1 * b.max_blocks + 2] = static_cast<int32_t>(b.num_blocks);
  EXPECT_DEATH(run_paged(cpu_ops(), c, b),
               "paged_attention: sequence 1: block_tables\\[1, 2\\] = 8 is outside \\[0, 8\\)");
}

TEST_F(PagedAttentionDeathTest, VisibleEntryIsMinusOne) {
  b.tables[0 * b.max_blocks + 1] = -1;
  EXPECT_DEATH(run_paged(cpu_ops(), c, b),
               "paged_attention: sequence 0: block_tables\\[0, 1\\] = -1 is outside");
}

TEST_F(PagedAttentionDeathTest, QueryPastSequenceLength) {
  b.seq_lens[1] = 35;
  EXPECT_DEATH(run_paged(cpu_ops(), c, b),
               "paged_attention: q_positions\\[6\\] = 35 is outside the 35 cached keys");
}

TEST_F(PagedAttentionDeathTest, SequenceIndexOutOfRange) {
  b.token_seq[0] = 2;
  EXPECT_DEATH(run_paged(cpu_ops(), c, b),
               "paged_attention: token_seq\\[0\\] = 2 is outside the 2 sequences");
}

}  // namespace
}  // namespace sluice::kernels::testing
