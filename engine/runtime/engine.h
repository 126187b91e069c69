#pragma once
// Engine: the step loop that ties the scheduler, the executor and the samplers together.
//
// submit() and abort() may be called from any thread: they only queue work under a mutex
// and wake the engine thread. The engine thread loops: drain the queue (add requests,
// rejecting invalid ones with a kAbort delta per choice; abort requests), schedule a step,
// execute it, take prompt logprobs from the extra logit rows of requests that asked for
// them, sample every sequence that asks for tokens with its own per-choice Sampler (seed +
// choice when seeded; logprobs from the same call), hand the tokens to the scheduler, and
// push one Delta per SequenceOutput to the request's sink (a choice's first delta with
// tokens also says how many prompt tokens came from the prefix cache and how long the
// request waited to be scheduled). With nothing to do it sleeps on
// a condition variable. stats() is a snapshot taken after each iteration, before that
// iteration's deltas are pushed, so a client that saw its finish delta reads stats that
// include it.
//
// Requests that need logits at every prompt position (prompt_logprobs, debug_logits) use a
// private prefix-cache namespace: a hit would skip positions whose logits they need.
// NOTE: their full blocks still enter the cache under that namespace (evictable, never hit
// by anyone else); a scheduler flag to skip lookup and registration would avoid that.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
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
  // Which waiting request runs next (--scheduling-policy): kFair is strict priority classes,
  // then weighted fair share between tenants (scheduler::FairSharePolicy); kFcfs is arrival
  // order, ignoring tenant and priority. With one tenant and one priority they agree.
  scheduler::SchedulingPolicy scheduling_policy = scheduler::SchedulingPolicy::kFair;
  // Start with the step loop paused until resume(): requests submitted meanwhile are all
  // drained by the first iteration (tests use it to submit a batch at once).
  bool start_paused = false;
  // The tensor-parallel group of this engine's executor (world size 1 only, for now).
  models::ParallelConfig parallel;
  // --seed: a request without a seed of its own gets the next value of a stream seeded with
  // this, in the order requests are admitted, so the same requests sent one after another to
  // a server started with the same seed sample the same tokens. Unset: such requests draw
  // from std::random_device.
  std::optional<uint64_t> seed;
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
  int64_t num_computed_tokens = 0;  // positions run through the model (prefill, recompute, decode)
  // Of those, prompt positions: prefill work after prefix-cache hits, recomputes included.
  int64_t num_prompt_tokens_computed = 0;
  int64_t num_steps = 0;
};

class Engine {
 public:
  // Sizes the KV pools, builds scheduler and executor, and starts the engine thread.
  static StatusOr<std::unique_ptr<Engine>> create(std::unique_ptr<models::Model> model,
                                                  EngineConfig config);
  // An engine over an executor that owns its KV pool (the GPU's, sized by the executor):
  // `num_blocks` per KV group of executor->config(); config.num_blocks and
  // kv_cache_memory_bytes are ignored.
  static StatusOr<std::unique_ptr<Engine>> create(std::unique_ptr<Executor> executor,
                                                  std::vector<int32_t> num_blocks,
                                                  EngineConfig config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; its deltas go to `sink`. Returns its id at once; problems (invalid
  // sampling params, a prompt too long) come back as a kAbort delta per choice on the sink.
  RequestId submit(Request request, std::shared_ptr<OutputSink> sink);
  // Ends the request wherever it is; its unfinished choices get a kAbort delta. Unknown or
  // finished ids are ignored.
  void abort(RequestId id);
  // Starts the step loop of an engine created with start_paused.
  void resume();
  // Stops the step loop and joins the thread (unfinished requests get no more deltas).
  void stop();

  EngineStats stats() const;
  const models::ModelConfig& model_config() const { return executor_->config(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    RequestId id;
    Request request;
    std::shared_ptr<OutputSink> sink;
    Clock::time_point submitted;  // when submit() queued it (for Delta::queue_seconds)
  };
  // Per choice: its sampler and what this step produced for its next delta.
  struct ChoiceState {
    std::unique_ptr<sampling::Sampler> sampler;
    std::vector<sampling::SampleLogprobs> logprobs;  // for the tokens of the next delta
    std::vector<float> debug_logits;                 // [rows, vocab] for the next delta
    bool sent_tokens = false;  // a delta with tokens went out (prompt extras ride on the first)
    uint64_t draw_seed = 0;    // the stream of this choice's draws on the executor's device
  };
  struct Live {
    std::shared_ptr<OutputSink> sink;
    sampling::SamplingParams params;  // with the stop ids used for min_tokens masking
    std::vector<TokenId> prompt;
    bool debug_logits = false;
    std::unordered_map<int32_t, ChoiceState> choices;
    // Prompt rows (prompt_logprobs, debug_logits): positions [0, num_prompt_rows_done) are
    // taken; the prompt needs positions [0, prompt.size() - 1).
    int32_t num_prompt_rows_done = 0;
    std::vector<sampling::SampleLogprobs> prompt_logprobs;  // [position] for token position+1
    std::shared_ptr<const std::vector<sampling::SampleLogprobs>> shared_prompt_logprobs;
    std::vector<float> prompt_debug_logits;  // [num_prompt_rows_done, vocab]
    // Set when a step first schedules the request (see note_first_scheduled).
    Clock::time_point submitted;
    bool scheduled = false;
    int32_t num_cached_tokens = 0;  // prefix-cache hit at that first schedule
    double queue_seconds = 0.0;     // submit -> that first schedule

    bool wants_prompt_rows() const { return params.prompt_logprobs >= 0 || debug_logits; }
    int32_t num_prompt_rows() const { return static_cast<int32_t>(prompt.size()) - 1; }
  };
  struct Outgoing {
    std::shared_ptr<OutputSink> sink;
    Delta delta;
  };

  Engine(EngineConfig config, std::unique_ptr<scheduler::Scheduler> scheduler,
         std::unique_ptr<Executor> executor);
  // The scheduler over `num_blocks` per group, then the engine thread.
  static StatusOr<std::unique_ptr<Engine>> start(std::unique_ptr<Executor> executor,
                                                 const std::vector<scheduler::KvGroupSpec>& specs,
                                                 EngineConfig config);
  void loop();
  void add(Pending p, std::vector<Outgoing>& out);
  // One kAbort delta for each choice of a request that never reached the scheduler.
  void reject(const Pending& p, std::vector<Outgoing>& out) const;
  // Executes `plan`, samples, updates the scheduler and publishes the outputs.
  void run_step(const scheduler::StepPlan& plan, std::vector<Outgoing>& out);
  // Records, for requests that `plan` schedules for the first time, their prefix-cache hit
  // (the first chunk's start position) and their time in the queue.
  void note_first_scheduled(const scheduler::StepPlan& plan);
  // The extra logit rows of this step's prompt chunks that still need them (empty if none).
  void plan_prompt_rows(const scheduler::StepPlan& plan);
  // device_draws_ for the plan: a draw for every sequence whose one sample needs no logits
  // on the host (no logprobs, debug logits, penalties, bias or min_tokens masking).
  void plan_device_draws(const scheduler::StepPlan& plan);
  void take_prompt_rows(const scheduler::StepPlan& plan, const StepLogits& logits);
  void publish(const std::vector<scheduler::SequenceOutput>& outputs, std::vector<Outgoing>& out);
  // Aborts every request of the plan after an executor failure.
  void fail_plan(const scheduler::StepPlan& plan, const Status& status, std::vector<Outgoing>& out);
  ChoiceState& choice_for(Live& live, int32_t choice);
  void refresh_stats();

  EngineConfig config_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<Executor> executor_;
  // Engine thread only:
  std::unordered_map<RequestId, Live> live_;
  std::mt19937_64 seed_stream_;         // config_.seed's stream (when set)
  std::vector<LogitRange> extra_rows_;  // [plan sequence] prompt rows of this step
  // [plan sequence] the draws the executor makes on its device this step (draws_on_device).
  std::vector<std::optional<DeviceDraw>> device_draws_;
  std::mt19937_64 draw_seeds_{std::random_device{}()};  // seeds of unseeded choices
  int64_t num_steps_ = 0;
  int64_t num_prompt_tokens_computed_ = 0;

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
