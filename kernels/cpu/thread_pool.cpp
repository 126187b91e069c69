#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "common/check.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace sluice::kernels::cpu {
namespace {

// How long an idle worker spins before it sleeps. Decode runs ~200 parallel_for calls per
// token with short serial gaps between them; a spinning worker picks the next one up in
// well under a microsecond, a sleeping one takes tens of microseconds to wake.
constexpr auto kSpinTime = std::chrono::microseconds(100);
// How long the dispatcher spins waiting for the workers before it starts yielding the CPU
// (matters when there are more threads than free cores).
constexpr int kWaitSpinsBeforeYield = 4096;

thread_local bool tls_in_task = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

constexpr uint64_t kTaskBits = 8;
constexpr uint64_t kTaskMask = (uint64_t{1} << kTaskBits) - 1;

int clamp_threads(int n) { return std::clamp(n, 1, ThreadPool::kMaxThreads); }

// Marks the current thread as running a pool task for the lifetime of the guard.
struct TaskGuard {
  bool saved = tls_in_task;
  TaskGuard() { tls_in_task = true; }
  ~TaskGuard() { tls_in_task = saved; }
};

}  // namespace

ThreadPool::ThreadPool(int num_threads) { start_workers(clamp_threads(num_threads)); }

ThreadPool::~ThreadPool() {
  std::lock_guard<std::mutex> lock(dispatch_mu_);
  stop_workers();
}

bool ThreadPool::in_task() { return tls_in_task; }

void ThreadPool::resize(int num_threads) {
  SLUICE_CHECK(!tls_in_task, "ThreadPool::resize called from inside a pool task");
  std::lock_guard<std::mutex> lock(dispatch_mu_);
  num_threads = clamp_threads(num_threads);
  if (num_threads == this->num_threads()) return;
  stop_workers();
  start_workers(num_threads);
}

void ThreadPool::start_workers(int num_threads) {
  stopping_.store(false);
  remaining_.store(0);
  num_threads_.store(num_threads, std::memory_order_relaxed);
  const uint64_t word = job_word_.load();
  workers_.reserve(num_threads - 1);
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, word] { worker_main(word); });
  }
}

void ThreadPool::stop_workers() {
  if (workers_.empty()) return;
  stopping_.store(true);
  // A new job word with zero tasks wakes everyone; they see stopping_ and exit.
  job_word_.store(((job_word_.load() >> kTaskBits) + 1) << kTaskBits);
  { std::lock_guard<std::mutex> lock(sleep_mu_); }
  sleep_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  num_threads_.store(1, std::memory_order_relaxed);
}

uint64_t ThreadPool::wait_for_job(uint64_t seen) {
  const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 0;; ++i) {
    uint64_t word = job_word_.load(std::memory_order_acquire);
    if (word != seen) return word;
    cpu_relax();
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() > spin_until) break;
      std::this_thread::yield();  // let a runnable thread have this core if one is waiting
    }
  }
  std::unique_lock<std::mutex> lock(sleep_mu_);
  // NOTE: the increment and the load below are seq_cst, as are the dispatcher's store of the
  // job word and its load of num_sleeping_: either we see the new word here or the
  // dispatcher sees us sleeping and notifies (under sleep_mu_, so not before we wait).
  num_sleeping_.fetch_add(1);
  uint64_t word;
  while ((word = job_word_.load()) == seen) sleep_cv_.wait(lock);
  num_sleeping_.fetch_sub(1);
  return word;
}

void ThreadPool::worker_main(uint64_t start_word) {
  TaskGuard guard;
  uint64_t seen = start_word;
  for (;;) {
    seen = wait_for_job(seen);
    if (stopping_.load(std::memory_order_acquire)) return;
    run_claimed_tasks(seen >> kTaskBits, static_cast<int>(seen & kTaskMask));
  }
}

void ThreadPool::run_claimed_tasks(uint64_t sequence, int num_tasks) {
  // Claim task indices of job `sequence` until none is left. A successful claim pins the
  // job's parameters: the dispatcher cannot finish (and replace) the job before this task
  // is done. A worker that arrives late sees another sequence and claims nothing.
  uint64_t claim = claim_word_.load(std::memory_order_acquire);
  for (;;) {
    if ((claim >> kTaskBits) != sequence) return;
    const int index = static_cast<int>(claim & kTaskMask);
    if (index >= num_tasks) return;
    if (!claim_word_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
      continue;  // `claim` was reloaded
    }
    const int64_t begin = job_items_ * index / num_tasks;
    const int64_t end = job_items_ * (index + 1) / num_tasks;
    if (begin < end) job_fn_(job_ctx_, begin, end);
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
    claim = claim_word_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(int64_t n_items, int64_t min_items_per_task, RangeFn fn, void* ctx) {
  SLUICE_CHECK(n_items < (int64_t{1} << 55), "parallel_for over {} items", n_items);
  if (min_items_per_task < 1) min_items_per_task = 1;
  int64_t num_tasks = std::min<int64_t>(num_threads(), n_items / min_items_per_task);
  if (num_tasks <= 1 || tls_in_task) {
    TaskGuard guard;
    fn(ctx, 0, n_items);
    return;
  }
  std::lock_guard<std::mutex> lock(dispatch_mu_);
  num_tasks = std::min<int64_t>(num_tasks, num_threads());  // a resize may have raced us
  if (num_tasks <= 1) {
    TaskGuard guard;
    fn(ctx, 0, n_items);
    return;
  }
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_items_ = n_items;
  remaining_.store(static_cast<int>(num_tasks), std::memory_order_relaxed);
  const uint64_t sequence = (job_word_.load(std::memory_order_relaxed) >> kTaskBits) + 1;
  claim_word_.store(sequence << kTaskBits, std::memory_order_release);
  job_word_.store((sequence << kTaskBits) | static_cast<uint64_t>(num_tasks));  // seq_cst
  if (num_sleeping_.load() > 0) {
    { std::lock_guard<std::mutex> sleep_lock(sleep_mu_); }
    sleep_cv_.notify_all();
  }
  {
    // The caller claims tasks too: if the workers are slow to arrive (busy or oversubscribed
    // cores), it simply runs more of the ranges itself.
    TaskGuard guard;
    run_claimed_tasks(sequence, static_cast<int>(num_tasks));
  }
  for (int i = 0; remaining_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < kWaitSpinsBeforeYield) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

int default_num_threads() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return clamp_threads(n);
  }
#endif
  return clamp_threads(static_cast<int>(std::thread::hardware_concurrency()));
}

ThreadPool& thread_pool() {
  static ThreadPool pool(default_num_threads());
  return pool;
}

void set_num_threads(int n) { thread_pool().resize(n <= 0 ? default_num_threads() : n); }

int num_threads() { return thread_pool().num_threads(); }

}  // namespace sluice::kernels::cpu
