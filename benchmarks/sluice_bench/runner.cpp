#include "sluice_bench/runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstdio>
#include <limits>

#include "sluice_bench/http_client.h"

namespace sluice::bench {
namespace {

namespace asio = boost::asio;

// State shared by the coroutines of one run; all of them run on one thread.
class Run {
 public:
  Run(const RunPlan& plan, asio::io_context& ioc)
      : plan_(plan),
        client_(ioc.get_executor(), plan.endpoint),
        slot_freed_(ioc),
        progress_timer_(ioc) {
    bodies_.reserve(plan.prompts.size());
    for (const BenchPrompt& p : plan.prompts) bodies_.push_back(build_request_body(p, plan.shape));
    out_.results.resize(plan.arrivals.size());
    tty_ = isatty(STDERR_FILENO) == 1;
  }

  Status resolve() { return client_.resolve(); }

  void start(asio::io_context& ioc) {
    t0_ = Clock::now();
    end_ = t0_;
    if (plan_.arrivals.empty()) return;
    asio::co_spawn(ioc, dispatch(), asio::detached);
    asio::co_spawn(ioc, progress(), asio::detached);
  }

  RunOutput finish() {
    out_.duration_s = seconds(end_);
    out_.connections_opened = client_.num_connections_opened();
    return std::move(out_);
  }

 private:
  double seconds(Clock::time_point t) const {
    return std::chrono::duration<double>(t - t0_).count();
  }

  asio::awaitable<void> dispatch() {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    for (size_t i = 0; i < plan_.arrivals.size(); ++i) {
      const Arrival& a = plan_.arrivals[i];
      const auto when =
          t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.t_s));
      boost::system::error_code ec;
      if (when > Clock::now()) {
        timer.expires_at(when);
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      // A request that arrives while the limit is reached waits for a slot (FIFO, as the
      // arrivals are in order); its latencies are timed from when it is sent.
      while (plan_.max_concurrency > 0 && in_flight_ >= plan_.max_concurrency) {
        slot_freed_.expires_at(Clock::time_point::max());
        co_await slot_freed_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      ++in_flight_;
      asio::co_spawn(ex, one_request(i), asio::detached);
    }
  }

  asio::awaitable<void> one_request(size_t i) {
    const Arrival& a = plan_.arrivals[i];
    const BenchPrompt& prompt = plan_.prompts[static_cast<size_t>(a.prompt_index)];
    RequestResult& r = out_.results[i];
    r.tenant = a.tenant;
    const std::string& key = plan_.api_keys[a.tenant < 0 ? 0 : static_cast<size_t>(a.tenant)];
    StreamChunk usage;
    std::optional<std::string> stream_error;
    r.start_s = seconds(Clock::now());
    HttpOutcome h = co_await client_.request(
        plan_.path, bodies_[static_cast<size_t>(a.prompt_index)], key, plan_.request_timeout,
        [&](std::string_view data, Clock::time_point at) {
          const StreamChunk c = parse_stream_chunk(data);
          if (c.error && !stream_error) stream_error = *c.error;
          if (c.malformed && !stream_error)
            stream_error = fmt::format("malformed event: {:.120}", data);
          if (c.has_content) {
            r.chunk_times_s.push_back(seconds(at));
            const int64_t tokens = c.num_token_ids > 0 ? c.num_token_ids : 1;
            r.chunk_tokens.push_back(tokens);
            chunk_tokens_seen_ += tokens;
          }
          if (c.has_usage) usage = c;
        });
    const Clock::time_point end = Clock::now();
    r.end_s = seconds(end);
    if (!h.transport_error.empty()) {
      r.error = h.transport_error;
    } else if (h.status != 200) {
      r.error = error_message(h.status, h.body);
    } else if (!h.event_stream) {
      r.error = fmt::format("HTTP 200 without an event stream: {:.200}", h.body);
    } else if (stream_error) {
      r.error = *stream_error;
    }
    // NOTE: a stream that ends cleanly without "data: [DONE]" still counts as completed:
    // some OpenAI-compatible servers omit it.
    r.success = r.error.empty();
    int64_t chunk_sum = 0;
    for (int64_t t : r.chunk_tokens) chunk_sum += t;
    r.output_tokens = usage.has_usage ? usage.completion_tokens : chunk_sum;
    r.prompt_tokens = usage.has_usage ? usage.prompt_tokens : prompt.prompt_len;
    r.cached_tokens = usage.cached_tokens;
    if (r.success) {
      ++completed_;
      if (r.output_tokens != prompt.output_len) ++out_.output_len_mismatches;
    } else {
      ++failed_;
    }
    end_ = std::max(end_, end);
    --in_flight_;
    slot_freed_.cancel();
    if (completed_ + failed_ == static_cast<int64_t>(plan_.arrivals.size())) {
      progress_timer_.cancel();
    }
  }

  asio::awaitable<void> progress() {
    // A live line on a terminal (every second, redrawn); a plain line every 10 s otherwise.
    const auto period = tty_ ? std::chrono::seconds(1) : std::chrono::seconds(10);
    const int64_t total = static_cast<int64_t>(plan_.arrivals.size());
    while (completed_ + failed_ < total) {
      boost::system::error_code ec;
      progress_timer_.expires_after(period);
      co_await progress_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (completed_ + failed_ >= total) break;  // woken by the last response
      print_progress(false);
    }
    print_progress(true);
  }

  void print_progress(bool last) {
    const double t = seconds(Clock::now());
    const std::string line =
        fmt::format("[{}] {}/{} done, {} failed, {} in flight, {:.1f} s, {:.1f} out tok/s",
                    plan_.label, completed_ + failed_, plan_.arrivals.size(), failed_, in_flight_,
                    t, t > 0 ? static_cast<double>(chunk_tokens_seen_) / t : 0.0);
    if (tty_) {
      std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), last ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  const RunPlan& plan_;
  HttpClient client_;
  std::vector<std::string> bodies_;  // per prompt, built before the clock starts
  asio::steady_timer slot_freed_;    // the dispatcher waits on it; a finishing request cancels it
  asio::steady_timer progress_timer_;
  Clock::time_point t0_{};
  Clock::time_point end_{};
  int64_t in_flight_ = 0;
  int64_t completed_ = 0;
  int64_t failed_ = 0;
  int64_t chunk_tokens_seen_ = 0;
  bool tty_ = false;
  RunOutput out_;
};

}  // namespace

RunOutput run_benchmark(const RunPlan& plan) {
  asio::io_context ioc;
  Run run(plan, ioc);
  if (Status s = run.resolve(); !s.is_ok()) {
    RunOutput out;
    out.results.resize(plan.arrivals.size());
    for (RequestResult& r : out.results) r.error = s.message();
    return out;
  }
  run.start(ioc);
  ioc.run();
  return run.finish();
}

}  // namespace sluice::bench
