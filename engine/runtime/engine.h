#pragma once
// Engine: the step loop that ties the scheduler, the executor and the samplers together.
//
// submit() and abort() may be called from any thread: they only queue work under a mutex
// and wake the engine thread. The engine thread loops: drain the queue (add requests,
// rejecting invalid ones with a kAbort delta; abort requests), schedule a step, execute it,
// sample every sequence that asks for tokens with its own per-choice Sampler (seed + choice
// when seeded), hand the tokens to the scheduler, and push one Delta per SequenceOutput to
// the request's sink. With nothing to do it sleeps on a condition variable. stats() is a
// snapshot taken after each iteration, before that iteration's deltas are pushed, so a
// client that saw its finish delta reads stats that include it.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/request.h"
#include "engine/sampling/sampler.h"
#include "scheduler/scheduler.h"

namespace sluice::engine {

struct EngineConfig {
  int32_t block_size = 16;
  // Blocks per KV group; when empty, kv_cache_memory_bytes is split into the same number of
  // blocks for every group.
  std::vector<int32_t> num_blocks;
  uint64_t kv_cache_memory_bytes = 0;
  int32_t max_num_seqs = 128;
  int32_t max_num_batched_tokens = 2048;
  int32_t max_model_len = 0;  // 0: the model's max_position_embeddings
  std::vector<TokenId> eos_token_ids;
  bool enable_prefix_caching = true;
  // Start with the step loop paused until resume(): requests submitted meanwhile are all
  // drained by the first iteration (tests use it to submit a batch at once).
  bool start_paused = false;
};

struct EngineStats {
  int32_t num_running = 0;  // sequences (choices)
  int32_t num_waiting = 0;
  int32_t num_running_requests = 0;
  int32_t num_waiting_requests = 0;
  std::vector<int32_t> kv_blocks_used;   // [group]
  std::vector<int32_t> kv_blocks_total;  // [group]
  double kv_usage = 0.0;
  int64_t prefix_hit_tokens = 0;
  int64_t prefix_query_tokens = 0;
  int64_t num_preemptions = 0;
  int64_t num_generation_tokens = 0;
  int64_t num_steps = 0;
};

class Engine {
 public:
  // Sizes the KV pools, builds scheduler and executor, and starts the engine thread.
  static StatusOr<std::unique_ptr<Engine>> create(std::unique_ptr<models::Model> model,
                                                  EngineConfig config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; its deltas go to `sink`. Returns its id at once; problems (invalid
  // sampling params, a prompt too long) come back as a kAbort delta on the sink.
  RequestId submit(Request request, std::shared_ptr<OutputSink> sink);
  // Ends the request wherever it is; its unfinished choices get a kAbort delta. Unknown or
  // finished ids are ignored.
  void abort(RequestId id);
  // Starts the step loop of an engine created with start_paused.
  void resume();
  // Stops the step loop and joins the thread (unfinished requests get no more deltas).
  void stop();

  EngineStats stats() const;
  const models::ModelConfig& model_config() const { return executor_->model().config(); }

 private:
  struct Pending {
    RequestId id;
    Request request;
    std::shared_ptr<OutputSink> sink;
  };
  struct Live {
    std::shared_ptr<OutputSink> sink;
    sampling::SamplingParams params;  // with the stop ids used for min_tokens masking
    std::vector<TokenId> prompt;
    std::unordered_map<int32_t, std::unique_ptr<sampling::Sampler>> samplers;  // per choice
  };
  struct Outgoing {
    std::shared_ptr<OutputSink> sink;
    Delta delta;
  };

  Engine(EngineConfig config, std::unique_ptr<scheduler::Scheduler> scheduler,
         std::unique_ptr<CpuExecutor> executor);
  void loop();
  void add(Pending p, std::vector<Outgoing>& out);
  void publish(const std::vector<scheduler::SequenceOutput>& outputs, std::vector<Outgoing>& out);
  // Aborts every request of the plan after an executor failure.
  void fail_plan(const scheduler::StepPlan& plan, const Status& status, std::vector<Outgoing>& out);
  sampling::Sampler& sampler_for(Live& live, int32_t choice);
  void refresh_stats();

  EngineConfig config_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<CpuExecutor> executor_;
  std::unordered_map<RequestId, Live> live_;  // engine thread only
  int64_t num_steps_ = 0;                     // engine thread only

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::deque<Pending> submits_;
  std::vector<RequestId> aborts_;
  uint64_t next_id_ = 1;
  bool paused_ = false;
  bool stopping_ = false;

  mutable std::mutex stats_mu_;
  EngineStats stats_;

  std::thread thread_;
};

}  // namespace sluice::engine
