// sluice-engine-bench: offline throughput of the whole engine (scheduler, paged KV cache,
// continuous batching, sampler) on the CPU, driving Engine::submit directly (no server).
//
// Part 1, concurrency sweep: R requests of 128 random prompt tokens (distinct per request,
// fixed seed) and 128 output tokens (greedy, ignore_eos), run with C requests in flight for
// C in 1, 4, 16, 64 (a new request is submitted as soon as one finishes). Reports output
// tok/s, mean / p50 / p99 inter-token latency and mean time to first token at each C.
// Part 2, shared prefix: R requests of one 512-token system prompt plus a distinct 32-token
// suffix, 64 output tokens, C = 16, with prefix caching on and off: output tok/s, prompt
// tokens actually computed, and the prefix hit rate.
//
//   sluice-engine-bench [--model PATH|default] [--threads N] [--requests N] [--quick]
//                       [--max-num-batched-tokens N] [--json PATH]
//
// Latencies are measured where the deltas arrive (the sink, on the engine thread), from the
// moment the request was submitted. Each run gets a fresh engine (the model is reloaded).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/models/loader.h"
#include "engine/runtime/engine.h"
#include "kernels/cpu/thread_pool.h"

namespace {

using namespace sluice;
using Clock = std::chrono::steady_clock;

constexpr const char* kDefaultModelFile = "gemma-3-270m-q4_k_m.gguf";

// "default": $SLUICE_DEFAULT_MODEL, the checkout's models/ (from build/bin/), ~/.cache/sluice/.
std::string resolve_model(const std::string& spec) {
  namespace fs = std::filesystem;
  if (spec != "default") return spec;
  if (const char* env = std::getenv("SLUICE_DEFAULT_MODEL"); env != nullptr && *env != '\0') {
    return env;
  }
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    candidates.push_back(exe.parent_path().parent_path().parent_path() / "models" /
                         kDefaultModelFile);
  candidates.push_back(fs::path("models") / kDefaultModelFile);
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    candidates.push_back(fs::path(home) / ".cache/sluice" / kDefaultModelFile);
  }
  for (const fs::path& c : candidates) {
    if (fs::is_regular_file(c, ec)) return c.string();
  }
  return {};
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Completion signal shared by the sinks of one run.
struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  int num_finished = 0;
  int num_aborted = 0;
};

// Records token arrival times of one request. push() only appends and signals.
class TimingSink : public engine::OutputSink {
 public:
  TimingSink(Tracker* tracker, Clock::time_point submitted)
      : tracker_(tracker), submitted_(submitted) {}

  void push(engine::Delta d) override {
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < d.token_ids.size(); ++i) arrivals_.push_back(now);
    if (!d.finish_reason.has_value()) return;
    {
      std::lock_guard<std::mutex> lock(tracker_->mu);
      ++tracker_->num_finished;
      if (*d.finish_reason == scheduler::FinishReason::kAbort) ++tracker_->num_aborted;
    }
    tracker_->cv.notify_one();
  }

  // Read after the request finished (the tracker's mutex orders it after the pushes).
  Clock::time_point submitted() const { return submitted_; }
  const std::vector<Clock::time_point>& arrivals() const { return arrivals_; }

 private:
  Tracker* tracker_;
  Clock::time_point submitted_;
  std::vector<Clock::time_point> arrivals_;
};

struct RunSpec {
  std::string name;
  int concurrency = 1;
  std::vector<std::vector<int32_t>> prompts;
  int max_tokens = 128;
  bool prefix_caching = true;
};

struct RunResult {
  std::string name;
  int concurrency = 0;
  int num_requests = 0;
  bool prefix_caching = true;
  int num_aborted = 0;
  int64_t output_tokens = 0;
  double wall_s = 0.0;
  double output_tok_s = 0.0;
  double mean_itl_ms = 0.0, p50_itl_ms = 0.0, p99_itl_ms = 0.0;
  double mean_ttft_ms = 0.0, p50_ttft_ms = 0.0;
  int64_t prompt_tokens = 0;           // submitted
  int64_t prompt_tokens_computed = 0;  // run through the model
  int64_t prefix_hit_tokens = 0, prefix_query_tokens = 0;
  int64_t num_preemptions = 0, num_steps = 0;
  double hit_rate() const {
    return prefix_query_tokens == 0 ? 0.0
                                    : static_cast<double>(prefix_hit_tokens) / prefix_query_tokens;
  }
};

struct Options {
  std::string model = "default";
  int threads = 2;
  int requests = 64;
  bool quick = false;
  int max_num_batched_tokens = 2048;
  std::string json;
};

StatusOr<RunResult> run(const Options& o, const std::string& model_path, const RunSpec& spec) {
  SLUICE_ASSIGN_OR_RETURN(models::LoadedModel lm,
                          models::load_model(model_path, {}, kernels::cpu_ops()));
  const models::ModelConfig& cfg = lm.model->config();
  constexpr int32_t kBlockSize = 16;
  size_t longest = 0;
  for (const auto& p : spec.prompts) longest = std::max(longest, p.size());
  const int32_t blocks_per_seq =
      static_cast<int32_t>((longest + spec.max_tokens + kBlockSize - 1) / kBlockSize);
  engine::EngineConfig ec;
  ec.block_size = kBlockSize;
  // Room for every request in flight (no preemption), plus slack for the prefix cache.
  ec.num_blocks.assign(models::kv_group_layouts(cfg).size(),
                       spec.concurrency * blocks_per_seq + 2 * blocks_per_seq);
  ec.max_num_seqs = spec.concurrency;
  ec.max_num_batched_tokens = o.max_num_batched_tokens;
  ec.max_model_len = static_cast<int32_t>(longest) + spec.max_tokens;
  ec.enable_prefix_caching = spec.prefix_caching;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> eng,
                          engine::Engine::create(std::move(lm.model), ec));

  Tracker tracker;
  std::vector<std::shared_ptr<TimingSink>> sinks;
  const int n = static_cast<int>(spec.prompts.size());
  int submitted = 0;
  const Clock::time_point start = Clock::now();
  for (;;) {
    int finished = 0;
    {
      std::unique_lock<std::mutex> lock(tracker.mu);
      finished = tracker.num_finished;
    }
    while (submitted < n && submitted - finished < spec.concurrency) {
      engine::Request r;
      r.prompt = spec.prompts[submitted];
      r.sampling.temperature = 0.0f;
      r.max_tokens = spec.max_tokens;
      r.ignore_eos = true;
      sinks.push_back(std::make_shared<TimingSink>(&tracker, Clock::now()));
      eng->submit(std::move(r), sinks.back());
      ++submitted;
    }
    std::unique_lock<std::mutex> lock(tracker.mu);
    if (tracker.num_finished == n) break;
    tracker.cv.wait(lock, [&] { return tracker.num_finished > finished; });
  }
  const Clock::time_point end = Clock::now();
  const engine::EngineStats st = eng->stats();
  eng->stop();

  RunResult r;
  r.name = spec.name;
  r.concurrency = spec.concurrency;
  r.num_requests = n;
  r.prefix_caching = spec.prefix_caching;
  r.num_aborted = tracker.num_aborted;
  r.wall_s = std::chrono::duration<double>(end - start).count();
  std::vector<double> itl, ttft;
  for (const auto& s : sinks) {
    const auto& a = s->arrivals();
    r.output_tokens += static_cast<int64_t>(a.size());
    if (a.empty()) continue;
    ttft.push_back(ms_between(s->submitted(), a.front()));
    for (size_t i = 1; i < a.size(); ++i) itl.push_back(ms_between(a[i - 1], a[i]));
  }
  for (const auto& p : spec.prompts) r.prompt_tokens += static_cast<int64_t>(p.size());
  r.output_tok_s = r.wall_s > 0 ? static_cast<double>(r.output_tokens) / r.wall_s : 0.0;
  r.mean_itl_ms = mean(itl);
  r.p50_itl_ms = percentile(itl, 0.5);
  r.p99_itl_ms = percentile(itl, 0.99);
  r.mean_ttft_ms = mean(ttft);
  r.p50_ttft_ms = percentile(ttft, 0.5);
  r.prompt_tokens_computed = st.num_prompt_tokens_computed;
  r.prefix_hit_tokens = st.prefix_hit_tokens;
  r.prefix_query_tokens = st.prefix_query_tokens;
  r.num_preemptions = st.num_preemptions;
  r.num_steps = st.num_steps;
  return r;
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int count, int vocab_size) {
  // Ordinary ids: above the specials at the bottom, below the rarely used tail.
  std::uniform_int_distribution<int32_t> id(1000, std::min(vocab_size, 200000) - 1);
  std::vector<int32_t> out(count);
  for (int32_t& t : out) t = id(rng);
  return out;
}

std::string result_json(const RunResult& r) {
  return fmt::format(
      "{{\"name\": \"{}\", \"concurrency\": {}, \"num_requests\": {}, \"prefix_caching\": {}, "
      "\"num_aborted\": {}, \"output_tokens\": {}, \"wall_s\": {:.3f}, \"output_tok_s\": {:.2f}, "
      "\"mean_itl_ms\": {:.3f}, \"p50_itl_ms\": {:.3f}, \"p99_itl_ms\": {:.3f}, "
      "\"mean_ttft_ms\": {:.3f}, \"p50_ttft_ms\": {:.3f}, \"prompt_tokens\": {}, "
      "\"prompt_tokens_computed\": {}, \"prefix_hit_tokens\": {}, \"prefix_query_tokens\": {}, "
      "\"prefix_hit_rate\": {:.4f}, \"num_preemptions\": {}, \"num_steps\": {}}}",
      r.name, r.concurrency, r.num_requests, r.prefix_caching, r.num_aborted, r.output_tokens,
      r.wall_s, r.output_tok_s, r.mean_itl_ms, r.p50_itl_ms, r.p99_itl_ms, r.mean_ttft_ms,
      r.p50_ttft_ms, r.prompt_tokens, r.prompt_tokens_computed, r.prefix_hit_tokens,
      r.prefix_query_tokens, r.hit_rate(), r.num_preemptions, r.num_steps);
}

int usage() {
  std::fprintf(stderr,
               "usage: sluice-engine-bench [--model PATH|default] [--threads N] [--requests N] "
               "[--quick] [--max-num-batched-tokens N] [--json PATH]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool requests_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--quick") {
      o.quick = true;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (k == "--model")
      o.model = v;
    else if (k == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (k == "--requests")
      o.requests = std::atoi(v.c_str()), requests_given = true;
    else if (k == "--max-num-batched-tokens")
      o.max_num_batched_tokens = std::atoi(v.c_str());
    else if (k == "--json")
      o.json = v;
    else
      return usage();
  }
  // --quick: fewer requests and shorter outputs, to see that it works (seconds, not minutes).
  if (o.quick && !requests_given) o.requests = 8;
  const int sweep_output = o.quick ? 16 : 128;
  const int prefix_output = o.quick ? 8 : 64;
  if (o.threads < 1 || o.requests < 1 || o.max_num_batched_tokens < 1) return usage();
  const std::string model_path = resolve_model(o.model);
  if (model_path.empty()) {
    std::fprintf(stderr,
                 "--model %s: %s not found (set SLUICE_DEFAULT_MODEL or pass --model PATH)\n",
                 o.model.c_str(), kDefaultModelFile);
    return 2;
  }
  kernels::cpu::set_num_threads(o.threads);
  auto probe = models::load_model(model_path, {}, kernels::cpu_ops());
  if (!probe.is_ok()) {
    std::fprintf(stderr, "%s\n", probe.status().message().c_str());
    return 1;
  }
  const int vocab = probe->model->config().vocab_size;
  const std::string model_name = probe->name;
  probe->model.reset();

  std::vector<RunSpec> specs;
  std::mt19937 rng(20240607);
  std::vector<std::vector<int32_t>> sweep_prompts;
  for (int i = 0; i < o.requests; ++i) sweep_prompts.push_back(random_tokens(rng, 128, vocab));
  // Levels above the request count would all run everything at once: the last level is
  // then the request count itself.
  std::vector<int> levels;
  for (int c : {1, 4, 16, 64}) levels.push_back(std::min(c, o.requests));
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  for (int c : levels) specs.push_back({"sweep", c, sweep_prompts, sweep_output, true});
  const std::vector<int32_t> system = random_tokens(rng, 512, vocab);
  std::vector<std::vector<int32_t>> prefix_prompts;
  for (int i = 0; i < o.requests; ++i) {
    std::vector<int32_t> p = system;
    const std::vector<int32_t> suffix = random_tokens(rng, 32, vocab);
    p.insert(p.end(), suffix.begin(), suffix.end());
    prefix_prompts.push_back(std::move(p));
  }
  const int prefix_concurrency = std::min(16, o.requests);
  specs.push_back({"shared_prefix", prefix_concurrency, prefix_prompts, prefix_output, true});
  specs.push_back({"shared_prefix", prefix_concurrency, prefix_prompts, prefix_output, false});

  std::vector<RunResult> results;
  for (const RunSpec& spec : specs) {
    std::fprintf(stderr, "running %s, concurrency %d, prefix caching %s...\n", spec.name.c_str(),
                 spec.concurrency, spec.prefix_caching ? "on" : "off");
    auto r = run(o, model_path, spec);
    if (!r.is_ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      return 1;
    }
    if (r->num_aborted > 0) {
      std::fprintf(stderr, "%d requests were aborted\n", r->num_aborted);
      return 1;
    }
    results.push_back(*r);
  }

  std::printf("sluice-engine-bench: %s, %d threads, max_num_batched_tokens %d%s\n",
              model_name.c_str(), o.threads, o.max_num_batched_tokens, o.quick ? ", --quick" : "");
  std::printf(
      "\nConcurrency sweep: %d requests x 128 prompt / %d output tokens (greedy, ignore_eos)\n",
      o.requests, sweep_output);
  std::printf("%6s %10s %12s %12s %12s %14s %8s %7s\n", "conc", "out tok/s", "mean ITL ms",
              "p50 ITL ms", "p99 ITL ms", "mean TTFT ms", "steps", "wall s");
  for (const RunResult& r : results) {
    if (r.name != "sweep") continue;
    std::printf("%6d %10.1f %12.1f %12.1f %12.1f %14.1f %8ld %7.1f\n", r.concurrency,
                r.output_tok_s, r.mean_itl_ms, r.p50_itl_ms, r.p99_itl_ms, r.mean_ttft_ms,
                static_cast<long>(r.num_steps), r.wall_s);
  }
  std::printf(
      "\nShared prefix: %d requests x (512 shared + 32 own) prompt / %d output tokens, "
      "concurrency %d\n",
      o.requests, prefix_output, prefix_concurrency);
  std::printf("%14s %10s %16s %16s %9s %14s %7s\n", "prefix caching", "out tok/s", "prompt tokens",
              "prompt computed", "hit rate", "mean TTFT ms", "wall s");
  for (const RunResult& r : results) {
    if (r.name != "shared_prefix") continue;
    std::printf("%14s %10.1f %16ld %16ld %8.1f%% %14.1f %7.1f\n", r.prefix_caching ? "on" : "off",
                r.output_tok_s, static_cast<long>(r.prompt_tokens),
                static_cast<long>(r.prompt_tokens_computed), 100.0 * r.hit_rate(), r.mean_ttft_ms,
                r.wall_s);
  }

  if (!o.json.empty()) {
    std::string out = fmt::format(
        "{{\"engine\": \"sluice\", \"model\": \"{}\", \"threads\": {}, \"quick\": {}, "
        "\"max_num_batched_tokens\": {}, \"runs\": [",
        model_name, o.threads, o.quick, o.max_num_batched_tokens);
    for (size_t i = 0; i < results.size(); ++i) out += (i ? ", " : "") + result_json(results[i]);
    out += "]}\n";
    std::ofstream f(o.json, std::ios::trunc);
    if (!f || !(f << out)) {
      std::fprintf(stderr, "--json %s: cannot write\n", o.json.c_str());
      return 1;
    }
  }
  return 0;
}
