// The other ops at Gemma 3 270M sizes, and the thread pool's dispatch cost: attention
// (decode over a long context, a 512-token prefill), paged_attention (batch-1 decodes at
// several contexts, 16 decodes at once; GB/s of K and V read), rms_norm, geglu, softmax over
// the vocabulary, top_k, and an empty parallel_for.

#include <algorithm>
#include <numeric>
#include <random>

#include "bench_util.h"
#include "kernels/cpu/thread_pool.h"

namespace sluice::kernels::bench {
namespace {

void bm_attention(benchmark::State& state, CpuIsa isa, int64_t T, int64_t S) {
  const OpTable* ops = ops_or_skip(state, isa);
  if (ops == nullptr) return;
  const int64_t nq = 4, nkv = 1, d = 256;  // Gemma 3 270M
  std::vector<float> q = random_floats(T * nq * d, 1), k = random_floats(S * nkv * d, 2),
                     v = random_floats(S * nkv * d, 3), out(T * nq * d);
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(S - T + t);
  AttentionArgs args;
  args.q = Tensor::make(q.data(), DType::kF32, {T, nq, d});
  args.k = Tensor::make(k.data(), DType::kF32, {S, nkv, d});
  args.v = Tensor::make(v.data(), DType::kF32, {S, nkv, d});
  args.out = Tensor::make(out.data(), DType::kF32, {T, nq, d});
  args.q_positions = Tensor::make(pos.data(), DType::kI32, {T});
  args.scale = 0.0625f;
  for (auto _ : state) {
    ops->attention(args);
    benchmark::ClobberMemory();
  }
  double pairs = 0;  // (query, key) pairs visited, per head
  for (int64_t t = 0; t < T; ++t) pairs += pos[t] + 1;
  set_flops(state, 4.0 * pairs * nq * d);
}

// `batch` decodes, each the only query of its sequence at position ctx - 1, over a paged
// cache of blocks of 16 in shuffled physical order. Bytes: the K and V rows read.
void bm_paged_decode(benchmark::State& state, CpuIsa isa, int64_t batch, int64_t ctx) {
  const OpTable* ops = ops_or_skip(state, isa);
  if (ops == nullptr) return;
  const int64_t nq = 4, nkv = 1, d = 256, bs = 16;  // Gemma 3 270M
  const int64_t blocks_per_seq = (ctx + bs - 1) / bs, num_blocks = batch * blocks_per_seq;
  std::vector<float> q = random_floats(batch * nq * d, 1), out(batch * nq * d);
  std::vector<float> k = random_floats(num_blocks * bs * nkv * d, 2);
  std::vector<float> v = random_floats(num_blocks * bs * nkv * d, 3);
  std::vector<int32_t> tables(num_blocks), seq_lens(batch, static_cast<int32_t>(ctx));
  std::vector<int32_t> token_seq(batch), pos(batch, static_cast<int32_t>(ctx - 1));
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), std::mt19937(4));
  std::iota(token_seq.begin(), token_seq.end(), 0);
  PagedAttentionArgs args;
  args.q = Tensor::make(q.data(), DType::kF32, {batch, nq, d});
  args.out = Tensor::make(out.data(), DType::kF32, {batch, nq, d});
  args.k_cache = Tensor::make(k.data(), DType::kF32, {num_blocks * bs, nkv, d});
  args.v_cache = Tensor::make(v.data(), DType::kF32, {num_blocks * bs, nkv, d});
  args.token_seq = Tensor::make(token_seq.data(), DType::kI32, {batch});
  args.q_positions = Tensor::make(pos.data(), DType::kI32, {batch});
  args.block_tables = Tensor::make(tables.data(), DType::kI32, {batch, blocks_per_seq});
  args.seq_lens = Tensor::make(seq_lens.data(), DType::kI32, {batch});
  args.block_size = static_cast<int>(bs);
  args.scale = 0.0625f;
  for (auto _ : state) {
    ops->paged_attention(args);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * batch * ctx * nkv * d * 2 * 4);
}

void bm_rms_norm(benchmark::State& state, CpuIsa isa, int64_t R) {
  const OpTable* ops = ops_or_skip(state, isa);
  if (ops == nullptr) return;
  const int64_t D = 640;
  std::vector<float> x = random_floats(R * D, 1), w = random_floats(D, 2), out(R * D);
  RmsNormArgs args;
  args.in = Tensor::make(x.data(), DType::kF32, {R, D});
  args.out = Tensor::make(out.data(), DType::kF32, {R, D});
  args.weight = Tensor::make(w.data(), DType::kF32, {D});
  for (auto _ : state) {
    ops->rms_norm(args);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * R * D * 8);
}

void bm_geglu(benchmark::State& state, CpuIsa isa, int64_t T) {
  const OpTable* ops = ops_or_skip(state, isa);
  if (ops == nullptr) return;
  const int64_t I = 2048;
  std::vector<float> gate = random_floats(T * I, 1), up = random_floats(T * I, 2), out(T * I);
  GegluArgs args;
  args.gate = Tensor::make(gate.data(), DType::kF32, {T, I});
  args.up = Tensor::make(up.data(), DType::kF32, {T, I});
  args.out = Tensor::make(out.data(), DType::kF32, {T, I});
  for (auto _ : state) {
    ops->geglu(args);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * T * I);
}

void bm_softmax_vocab(benchmark::State& state, CpuIsa isa) {
  const OpTable* ops = ops_or_skip(state, isa);
  if (ops == nullptr) return;
  const int64_t V = 262144;
  std::vector<float> src = random_floats(V, 1), x(V);
  SoftmaxArgs args;
  args.x = Tensor::make(x.data(), DType::kF32, {1, V});
  for (auto _ : state) {
    std::copy(src.begin(), src.end(), x.begin());
    ops->softmax(args);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * V);
}

void bm_top_k_vocab(benchmark::State& state) {
  const int64_t V = 262144;
  const int k = static_cast<int>(state.range(0));
  std::vector<float> x = random_floats(V, 1), values(k);
  std::vector<int32_t> indices(k);
  TopKArgs args;
  args.values = Tensor::make(x.data(), DType::kF32, {V});
  args.out_indices = Tensor::make(indices.data(), DType::kI32, {k});
  args.out_values = Tensor::make(values.data(), DType::kF32, {k});
  args.k = k;
  for (auto _ : state) {
    cpu_ops().top_k(args);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * V);
}

// The cost of one dispatch to all threads with (almost) no work: the per-op overhead that
// decode pays ~200 times per token.
void bm_parallel_for_overhead(benchmark::State& state) {
  std::vector<int64_t> sink(256);
  const int64_t n = cpu::num_threads();
  for (auto _ : state) {
    cpu::parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) sink[i] += 1;
    });
  }
  benchmark::DoNotOptimize(sink.data());
  state.counters["threads"] = static_cast<double>(n);
}

int register_all() {
  for (CpuIsa isa : kAllIsas) {
    const std::string suffix = std::string("/") + cpu::isa_name(isa);
    benchmark::RegisterBenchmark(("attention/decode_S4096" + suffix).c_str(), bm_attention, isa, 1,
                                 4096)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("attention/prefill_T512" + suffix).c_str(), bm_attention, isa,
                                 512, 512)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    for (auto [batch, ctx] :
         {std::pair<int64_t, int64_t>{1, 512}, {1, 2048}, {1, 8192}, {16, 1024}}) {
      const std::string name =
          "paged_attention/decode_B" + std::to_string(batch) + "_S" + std::to_string(ctx) + suffix;
      benchmark::RegisterBenchmark(name.c_str(), bm_paged_decode, isa, batch, ctx)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark(("rms_norm/1x640" + suffix).c_str(), bm_rms_norm, isa, 1)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("rms_norm/512x640" + suffix).c_str(), bm_rms_norm, isa, 512)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("geglu/1x2048" + suffix).c_str(), bm_geglu, isa, 1)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("geglu/512x2048" + suffix).c_str(), bm_geglu, isa, 512)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("softmax/262144" + suffix).c_str(), bm_softmax_vocab, isa)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("top_k/262144", bm_top_k_vocab)->Arg(1)->Arg(64)->UseRealTime();
  benchmark::RegisterBenchmark("parallel_for/overhead", bm_parallel_for_overhead)->UseRealTime();
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace sluice::kernels::bench
