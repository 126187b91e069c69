// The engine on the GPU: Engine + CudaExecutor (continuous batching, paged KV blocks
// managed by the scheduler over the device pool, copy-on-write of forked choices) against
// the same CUDA model driven directly, and against the CPU engine on the same bf16 weights.

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "engine/executor_cuda/cuda_executor.h"
#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
#include "gpu/gpu_test_util.h"
#include "gpu/model_test_util.h"
#include "kernels/cuda/matmul.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace sluice::engine {
namespace {

namespace fs = std::filesystem;

class Collect : public OutputSink {
 public:
  explicit Collect(int n) : n_(n) {}
  void push(Delta d) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& t = tokens_[d.choice];
    t.insert(t.end(), d.token_ids.begin(), d.token_ids.end());
    if (d.finish_reason) {
      ++finished_;
      aborted_ |= *d.finish_reason == scheduler::FinishReason::kAbort;
    }
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return finished_ >= n_; });
  }
  std::vector<TokenId> tokens(int c) {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_[c];
  }
  bool aborted() {
    std::lock_guard<std::mutex> lock(mu_);
    return aborted_;
  }

 private:
  int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::vector<TokenId>> tokens_;
  int finished_ = 0;
  bool aborted_ = false;
};

Request greedy_request(std::vector<TokenId> prompt, int max_tokens, int n) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.max_tokens = max_tokens;
  r.n = n;
  r.ignore_eos = true;
  return r;
}

// Runs `requests` concurrently on `engine`; returns each request's choices' tokens.
std::vector<std::vector<std::vector<TokenId>>> run_all(Engine& engine,
                                                       const std::vector<Request>& requests) {
  std::vector<std::shared_ptr<Collect>> sinks;
  for (const Request& r : requests) {
    sinks.push_back(std::make_shared<Collect>(r.n));
    engine.submit(r, sinks.back());
  }
  std::vector<std::vector<std::vector<TokenId>>> out;
  for (size_t i = 0; i < sinks.size(); ++i) {
    EXPECT_TRUE(sinks[i]->wait()) << "request " << i << " did not finish";
    EXPECT_FALSE(sinks[i]->aborted()) << "request " << i << " was aborted (see the log)";
    std::vector<std::vector<TokenId>> choices;
    for (int c = 0; c < requests[i].n; ++c) choices.push_back(sinks[i]->tokens(c));
    out.push_back(std::move(choices));
  }
  return out;
}

// Blocks of 16, 8 sequences and 64 tokens a step.
EngineConfig small_config() {
  EngineConfig ec;
  ec.block_size = 16;
  ec.max_num_seqs = 8;
  ec.max_num_batched_tokens = 64;
  return ec;
}

// The engine over the CUDA model of `dir`, sized by `ec`, with `blocks` KV blocks per group
// (0: the pool takes what is free, up to `utilization` of the device). `model_out`, when
// given, receives a view of the model the engine owns.
StatusOr<std::unique_ptr<Engine>> cuda_engine(
    const std::string& dir, const EngineConfig& ec, int blocks = 96, float utilization = 0.9f,
    const models::cuda::CudaModelBase** model_out = nullptr) {
  SLUICE_ASSIGN_OR_RETURN(models::ModelFiles files, models::open_model_files(dir));
  models::cuda::CudaModelOptions o;
  o.max_num_tokens = ec.max_num_batched_tokens;
  o.max_num_seqs = ec.max_num_seqs;
  o.block_size = ec.block_size;
  if (blocks > 0) o.num_blocks.assign(models::kv_group_layouts(files.config).size(), blocks);
  o.gpu_memory_utilization = utilization;
  SLUICE_ASSIGN_OR_RETURN(auto model, load_cuda_model(files, o));
  if (model_out != nullptr) *model_out = model.get();
  SLUICE_ASSIGN_OR_RETURN(auto executor, CudaExecutor::create(std::move(model)));
  std::vector<int32_t> pool = executor->num_blocks();
  return Engine::create(std::unique_ptr<Executor>(std::move(executor)), pool, ec);
}

std::vector<TokenId> prompt_of(int len, int vocab, int salt) {
  std::vector<TokenId> p(len);
  for (int i = 0; i < len; ++i) p[i] = 2 + (i * 37 + salt * 101) % (vocab - 2);
  return p;
}

class CudaEngine : public ::testing::TestWithParam<std::string> {};

// A mixed batch (prefill chunks beside decodes, n = 3 forks of a prompt that ends inside a
// block, so the first decode copies that block) gives the tokens the same requests give one
// at a time, and the forks of a greedy request all equal its n = 1 run. The CPU engine on
// the same bf16 weights agrees on the first tokens (later ones may part where two logits
// are within bf16 rounding of each other).
TEST_P(CudaEngine, BatchedGreedyMatchesOneAtATimeAndCpu) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path(GetParam());
  const EngineConfig ec = small_config();  // a 40-token prompt prefills beside decodes
  auto engine = cuda_engine(dir, ec);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  const int V = (*engine)->model_config().vocab_size;

  std::vector<Request> reqs = {greedy_request(prompt_of(20, V, 1), 12, 3),
                               greedy_request(prompt_of(40, V, 2), 12, 1),
                               greedy_request(prompt_of(7, V, 3), 12, 1)};
  std::vector<std::vector<std::vector<TokenId>>> alone;
  for (const Request& r : reqs) {
    Request one = r;
    one.n = 1;
    alone.push_back(run_all(**engine, {one})[0]);
  }
  const auto batched = run_all(**engine, reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_EQ(alone[i][0].size(), 12u);
    for (int c = 0; c < reqs[i].n; ++c) {
      EXPECT_EQ(batched[i][c], alone[i][0]) << "request " << i << " choice " << c;
    }
  }

  // The CPU engine on the same bf16 weights.
  const fs::path bf16 = sluice::testing::scratch_path("sluice_cuda_engine_" + GetParam());
  sluice::testing::write_bf16_copy(dir, bf16);
  auto cpu = models::load_model(bf16.string(), {}, kernels::cpu_ops());
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  EngineConfig cc = ec;
  cc.kv_cache_memory_bytes = 64ull << 20;
  auto cpu_engine = Engine::create(std::move(cpu->model), cc);
  ASSERT_TRUE(cpu_engine.is_ok()) << cpu_engine.status().to_string();
  for (size_t i = 0; i < reqs.size(); ++i) {
    Request one = reqs[i];
    one.n = 1;
    const auto want = run_all(**cpu_engine, {one})[0][0];
    EXPECT_EQ(std::vector<TokenId>(alone[i][0].begin(), alone[i][0].begin() + 4),
              std::vector<TokenId>(want.begin(), want.begin() + 4))
        << "request " << i << ": first tokens differ from the CPU engine";
  }
  fs::remove_all(bf16);
}

// Sampling on the device: rows without logprobs, penalties or bias never cross to the host
// (greedy, and top-k/top-p/temperature with a seed); a seeded request draws the same tokens
// alone and in a batch and again later; a different seed draws others; a request with
// logprobs or a repetition penalty, and the n = 3 fork step, take their rows to the host
// and still finish.
TEST_P(CudaEngine, DrawsOnTheDeviceAndOnlyRowsThatNeedLogitsCrossToTheHost) {
  SLUICE_SKIP_WITHOUT_GPU();
  const std::string dir = sluice::testing::fixture_path(GetParam());
  const models::cuda::CudaModelBase* m = nullptr;
  auto engine = cuda_engine(dir, small_config(), 96, 0.9f, &m);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  const int V = (*engine)->model_config().vocab_size;

  auto sampled = [&](int salt, uint64_t seed) {
    Request r = greedy_request(prompt_of(18, V, salt), 12, 1);
    r.sampling.temperature = 0.9f;
    r.sampling.top_k = 50;
    r.sampling.top_p = 0.95f;
    r.sampling.seed = seed;
    return r;
  };
  const auto batched =
      run_all(**engine, {greedy_request(prompt_of(20, V, 1), 12, 1), sampled(5, 1234),
                         greedy_request(prompt_of(9, V, 2), 12, 1)});
  EXPECT_EQ(m->host_logit_rows(), 0) << "rows drawn on the device crossed to the host";
  ASSERT_EQ(batched[1][0].size(), 12u);
  const auto alone = run_all(**engine, {sampled(5, 1234)});
  EXPECT_EQ(alone[0][0], batched[1][0]) << "a seeded draw depends on its (seed, step) alone";
  const auto other_seed = run_all(**engine, {sampled(5, 99)});
  EXPECT_NE(other_seed[0][0], batched[1][0]);
  EXPECT_EQ(m->host_logit_rows(), 0);

  Request with_logprobs = sampled(6, 7);
  with_logprobs.sampling.logprobs = 2;
  Request with_penalty = sampled(7, 8);
  with_penalty.sampling.repetition_penalty = 1.3f;
  Request forks = sampled(8, 9);
  forks.n = 3;
  const auto host = run_all(**engine, {with_logprobs, with_penalty, forks});
  EXPECT_EQ(host[0][0].size(), 12u);
  EXPECT_EQ(host[1][0].size(), 12u);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(host[2][c].size(), 12u) << "choice " << c;
  // 12 rows each for logprobs and the penalty, one for the fork step (its 3 draws); the
  // forks' later tokens are drawn on the device.
  EXPECT_EQ(m->host_logit_rows(), 12 + 12 + 1);

  // Prompt logprobs of an 18-token prompt (more rows than max_num_seqs 8, so the head runs
  // in chunks): the 17 prompt rows cross, the sampling row is still drawn on the device, and
  // with logprobs as well every row crosses.
  Request prompt_rows = sampled(9, 10);
  prompt_rows.sampling.prompt_logprobs = 1;
  const auto with_prompt_rows = run_all(**engine, {prompt_rows});
  EXPECT_EQ(with_prompt_rows[0][0], run_all(**engine, {sampled(9, 10)})[0][0])
      << "prompt logprobs changed the draws";
  EXPECT_EQ(m->host_logit_rows(), 12 + 12 + 1 + 17);
  prompt_rows.sampling.logprobs = 1;
  EXPECT_EQ(run_all(**engine, {prompt_rows})[0][0].size(), 12u);
  EXPECT_EQ(m->host_logit_rows(), 12 + 12 + 1 + 17 + 17 + 12);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaEngine,
                         ::testing::Values("gemma3_tiny_d256", "gemma4_e2b_realdims"));

using kernels::cuda::testing::Ballast;
using kernels::cuda::testing::device_bytes_used;

// Serving gives back every device byte it took: an engine that ran a mixed batch (n = 3
// forks, a request aborted mid-decode) and was destroyed, and a load refused for lack of
// memory, leave the device as they found it, and the KV gauge at 0 before that.
TEST(CudaEngineMemory, EveryDeviceByteComesBack) {
  SLUICE_SKIP_WITHOUT_GPU();
  // Exact under the emulator; on a GPU the driver counts in pages.
#if defined(SLUICE_CUDA_EMU)
  constexpr size_t kSlack = 0;
#else
  constexpr size_t kSlack = 2u << 20;
#endif
  const std::string dir = sluice::testing::fixture_path("gemma3_tiny_d256");
  const EngineConfig ec = small_config();
  {
    // A first engine: what a process creates once (library handles) is not the engine's.
    auto engine = cuda_engine(dir, ec);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    const int V = (*engine)->model_config().vocab_size;
    run_all(**engine, {greedy_request(prompt_of(20, V, 1), 4, 1)});
  }
  const size_t before = device_bytes_used();
  {
    auto engine = cuda_engine(dir, ec);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    EXPECT_GT(device_bytes_used(), before) << "the engine holds its weights and KV pool";
    const int V = (*engine)->model_config().vocab_size;
    // One request aborted after its first tokens.
    auto sink = std::make_shared<Collect>(1);
    const RequestId id = (*engine)->submit(greedy_request(prompt_of(30, V, 4), 200, 1), sink);
    for (int i = 0; i < 6000 && sink->tokens(0).size() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GE(sink->tokens(0).size(), 2u);
    (*engine)->abort(id);
    EXPECT_TRUE(sink->wait());
    EXPECT_TRUE(sink->aborted());
    run_all(**engine, {greedy_request(prompt_of(20, V, 1), 12, 3),
                       greedy_request(prompt_of(40, V, 2), 12, 1)});
    const EngineStats stats = (*engine)->stats();
    for (size_t g = 0; g < stats.kv_blocks_used.size(); ++g) {
      EXPECT_EQ(stats.kv_blocks_used[g], 0) << "KV group " << g;
    }
  }
  const size_t after_engine = device_bytes_used();
  EXPECT_LE(std::max(after_engine, before) - std::min(after_engine, before), kSlack)
      << "before " << before << " bytes, after the engine " << after_engine;

  auto files = models::open_model_files(dir);
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  models::cuda::CudaModelOptions o;
  o.max_num_tokens = 1 << 30;  // scratch for 2^30 tokens cannot be allocated
  o.max_num_seqs = 2;
  o.num_blocks.assign(models::kv_group_layouts(files->config).size(), 8);
  auto refused = load_cuda_model(*files, o);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  const size_t after_refusal = device_bytes_used();
  EXPECT_LE(std::max(after_refusal, before) - std::min(after_refusal, before), kSlack)
      << "before " << before << " bytes, after the refused load " << after_refusal;
}

// However little device memory is free, a model either loads and serves or is refused with
// RESOURCE_EXHAUSTED naming GPU memory, and a refusal leaves nothing allocated: the weights,
// the scratch buffers, the KV pool (sized from what is free, at gpu_memory_utilization 1)
// and the decode graphs each fail cleanly wherever the memory runs out.
TEST(CudaEngineMemory, AnyFreeMemoryLoadsOrIsRefusedCleanly) {
  SLUICE_SKIP_WITHOUT_GPU();
  for (const std::string name : {"gemma3_tiny_d256", "gemma4_e2b_realdims"}) {
    SCOPED_TRACE(name);
    const std::string dir = sluice::testing::fixture_path(name);
    EngineConfig ec = small_config();
    ec.max_num_seqs = 4;
    // blocks 0: the pool takes what is free.
    auto load = [&](int blocks) { return cuda_engine(dir, ec, blocks, 1.0f); };
    // What a small pool needs: the weights, scratch and 24 blocks a group (the process's
    // cuBLASLt workspace exists before, as it does once any model has loaded).
    ASSERT_TRUE(kernels::cuda::init_blas().is_ok());
    const size_t base = device_bytes_used();
    size_t need = 0;
    int V = 0;
    {
      auto engine = load(24);
      ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
      V = (*engine)->model_config().vocab_size;
      run_all(**engine, {greedy_request(prompt_of(20, V, 1), 4, 1)});
      need = device_bytes_used() - base;
    }
    int loaded = 0, refused = 0;
    for (const double f : {0.0, 1.0 / 64, 1.0 / 32, 1.0 / 16, 1.0 / 8, 3.0 / 16, 1.0 / 4, 3.0 / 8,
                           1.0 / 2, 3.0 / 4, 1.0, 1.5, 3.0}) {
      const size_t leave = static_cast<size_t>(f * static_cast<double>(need));
      {
        Ballast ballast(leave);
        const size_t held = device_bytes_used();
        auto engine = load(0);
        if (engine.is_ok()) {
          ++loaded;
          const auto out = run_all(**engine, {greedy_request(prompt_of(20, V, 1), 6, 2),
                                              greedy_request(prompt_of(33, V, 2), 6, 1)});
          EXPECT_EQ(out[0][0].size(), 6u) << "free " << leave;
          EXPECT_EQ(out[0][1], out[0][0]) << "free " << leave;
        } else {
          ++refused;
          EXPECT_EQ(loaded, 0) << "free " << leave << " is refused where less loaded";
          EXPECT_EQ(engine.status().code(), StatusCode::kResourceExhausted)
              << "free " << leave << ": " << engine.status().to_string();
          EXPECT_NE(engine.status().message().find("GPU memory"), std::string::npos)
              << engine.status().to_string();
          EXPECT_EQ(device_bytes_used(), held)
              << "free " << leave << ": a refused load left memory allocated";
        }
      }
      EXPECT_EQ(device_bytes_used(), base) << "free " << leave;
    }
    EXPECT_GE(refused, 2) << "no memory, and 2% of what the model needs, must be refused";
    EXPECT_GE(loaded, 2) << "1.5 and 3 times what the model needs must load";
  }
}

TEST(CudaEngineErrors, NoDeviceOrBadFilesAreStatuses) {
  // Runs everywhere: a missing model is a Status, never a crash.
  auto files = models::open_model_files("/nonexistent/model");
  EXPECT_FALSE(files.is_ok());
}

}  // namespace
}  // namespace sluice::engine
