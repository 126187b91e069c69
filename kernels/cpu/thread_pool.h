#pragma once
// The CPU backend's persistent thread pool. Ops split their work with parallel_for into at
// most one contiguous, evenly sized range per thread. The calling thread and the workers
// claim ranges from a shared counter, so a worker that is slow to wake (a busy or
// oversubscribed core) never holds the caller up: the caller just runs more ranges itself.
// Workers stay alive between calls: after a job they spin briefly (so the ~200 back-to-back
// calls of one decode step do not pay a wake-up each), then sleep on a condition variable.
// No thread is created per call.
//
// One process-wide pool (thread_pool()) serves every op; `--threads N` sets its size with
// set_num_threads(N). Calls from several threads at once are serialised; a parallel_for
// called from inside a pool task runs inline (no nested parallelism, no deadlock).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace sluice::kernels::cpu {

class ThreadPool {
 public:
  // The most threads a pool may have (the job word carries the task count in 8 bits).
  static constexpr int kMaxThreads = 255;

  // `num_threads` counts the caller too: 1 means no workers, everything runs inline.
  // Values are clamped to [1, kMaxThreads].
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_.load(std::memory_order_relaxed); }

  // Stops the workers and starts `num_threads - 1` new ones. Waits for a running
  // parallel_for to finish first. Must not be called from inside a pool task.
  void resize(int num_threads);

  // Calls fn(begin, end) on disjoint ranges that together cover [0, n_items) exactly once,
  // and returns when all are done. Range i of n is [n_items*i/n, n_items*(i+1)/n), with
  // n = min(num_threads(), n_items / min_items_per_task) (at least 1); which thread runs which
  // range is not specified. With n == 1, inside a
  // pool task, or for n_items <= 0, it calls fn(0, n_items) inline (nothing when n_items <= 0).
  // fn must not throw.
  template <typename Fn>
  void parallel_for(int64_t n_items, Fn&& fn, int64_t min_items_per_task = 1) {
    if (n_items <= 0) return;
    using F = std::remove_reference_t<Fn>;
    auto trampoline = [](void* ctx, int64_t begin, int64_t end) {
      (*static_cast<F*>(ctx))(begin, end);
    };
    run(n_items, min_items_per_task, trampoline, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // True on a pool worker or on a caller while it runs its own range.
  static bool in_task();

 private:
  using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);

  void run(int64_t n_items, int64_t min_items_per_task, RangeFn fn, void* ctx);
  void start_workers(int num_threads);
  void stop_workers();
  void worker_main(uint64_t start_word);
  uint64_t wait_for_job(uint64_t seen);
  void run_claimed_tasks(uint64_t sequence, int num_tasks);

  std::atomic<int> num_threads_{1};
  std::mutex dispatch_mu_;  // one job at a time; held across resize()
  std::vector<std::thread> workers_;

  // The job word: (sequence << 8) | num_tasks; a change of word is a new job. Task indices
  // are claimed from claim_word_ = (sequence << 8) | next_index by whoever comes first, the
  // caller included; remaining_ counts tasks not yet finished.
  std::atomic<uint64_t> job_word_{0};
  std::atomic<uint64_t> claim_word_{0};
  std::atomic<int> remaining_{0};
  std::atomic<bool> stopping_{false};
  RangeFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int64_t job_items_ = 0;

  // Sleeping workers wait here; the dispatcher only notifies when some are asleep.
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  std::atomic<int> num_sleeping_{0};
};

// The process-wide pool, created on first use with default_num_threads() threads.
ThreadPool& thread_pool();

// Sets the size of the process-wide pool (`--threads`). n <= 0 means default_num_threads().
void set_num_threads(int n);
int num_threads();

// The CPUs this process may run on (sched affinity), or hardware_concurrency, at least 1.
int default_num_threads();

// parallel_for on the process-wide pool.
template <typename Fn>
void parallel_for(int64_t n_items, Fn&& fn, int64_t min_items_per_task = 1) {
  thread_pool().parallel_for(n_items, std::forward<Fn>(fn), min_items_per_task);
}

}  // namespace sluice::kernels::cpu
