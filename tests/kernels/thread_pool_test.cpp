// ThreadPool: every index covered exactly once, even splits, inline runs, nesting, resizing
// and callers on several threads.

#include "kernels/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::kernels::cpu {
namespace {

// Runs parallel_for(n) and checks that every index was visited exactly once.
void expect_exact_cover(ThreadPool& pool, int64_t n, int64_t min_items) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 1)));
  for (auto& h : hits) h.store(0);
  std::atomic<int> calls{0};
  pool.parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        ASSERT_LE(0, begin);
        ASSERT_LT(begin, end);
        ASSERT_LE(end, n);
        calls.fetch_add(1);
        for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
      },
      min_items);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n;
  if (n <= 0) {
    EXPECT_EQ(calls.load(), 0);
  }
  EXPECT_LE(calls.load(), pool.num_threads());
}

TEST(ThreadPoolTest, CoversEveryIndexOnceForManySizes) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int round = 0; round < 3; ++round) {
      for (int64_t n : {0, 1, 2, 3, 5, 7, 16, 17, 100, 1001, 4096}) {
        for (int64_t min_items : {1, 4, 1000}) expect_exact_cover(pool, n, min_items);
      }
    }
  }
}

TEST(ThreadPoolTest, ThousandsOfBackToBackCalls) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  int64_t expected = 0;
  for (int i = 0; i < 5000; ++i) {
    const int64_t n = 1 + (i * 7919) % 97;
    expected += n * (n - 1) / 2;
    pool.parallel_for(n, [&](int64_t begin, int64_t end) {
      int64_t s = 0;
      for (int64_t j = begin; j < end; ++j) s += j;
      total.fetch_add(s);
    });
  }
  EXPECT_EQ(total.load(), expected);
}

TEST(ThreadPoolTest, SplitsIntoEvenRanges) {
  ThreadPool pool(3);
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  pool.parallel_for(10, [&](int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(mu);
    ranges.emplace_back(begin, end);
  });
  std::sort(ranges.begin(), ranges.end());
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], std::make_pair(int64_t{0}, int64_t{3}));
  EXPECT_EQ(ranges[1], std::make_pair(int64_t{3}, int64_t{6}));
  EXPECT_EQ(ranges[2], std::make_pair(int64_t{6}, int64_t{10}));
}

TEST(ThreadPoolTest, WorkersRunRangesConcurrently) {
  // Each range waits until another thread is inside a range too: this finishes only if a
  // worker really runs one concurrently with the caller.
  ThreadPool pool(2);
  std::atomic<int> inside{0};
  std::atomic<bool> timed_out{false};
  std::mutex mu;
  std::vector<std::thread::id> ids;
  pool.parallel_for(2, [&](int64_t, int64_t) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.push_back(std::this_thread::get_id());
    }
    inside.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (inside.load() < 2) {
      if (std::chrono::steady_clock::now() > deadline) {
        timed_out = true;
        break;
      }
      std::this_thread::yield();
    }
  });
  EXPECT_FALSE(timed_out.load());
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_NE(ids[0], ids[1]);
}

TEST(ThreadPoolTest, SmallWorkRunsInlineOnTheCaller) {
  ThreadPool pool(3);
  std::vector<std::thread::id> ids;
  pool.parallel_for(
      50,
      [&](int64_t begin, int64_t end) {
        EXPECT_EQ(begin, 0);
        EXPECT_EQ(end, 50);
        ids.push_back(std::this_thread::get_id());
      },
      /*min_items_per_task=*/40);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids[0], std::this_thread::get_id());
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.parallel_for(8, [&](int64_t begin, int64_t end) {
    EXPECT_TRUE(ThreadPool::in_task());
    for (int64_t i = begin; i < end; ++i) {
      pool.parallel_for(100, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
    }
  });
  EXPECT_EQ(total.load(), 800);
  EXPECT_FALSE(ThreadPool::in_task());
}

TEST(ThreadPoolTest, CallersOnSeveralThreadsAreSerialisedCorrectly) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        pool.parallel_for(64, [&](int64_t begin, int64_t end) { total.fetch_add(end - begin); });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 3 * 300 * 64);
}

TEST(ThreadPoolTest, ResizeKeepsWorking) {
  ThreadPool pool(1);
  for (int threads : {3, 1, 2, 2, 4}) {
    pool.resize(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    expect_exact_cover(pool, 1000, 1);
  }
  pool.resize(0);  // clamped
  EXPECT_EQ(pool.num_threads(), 1);
}

TEST(ThreadPoolTest, WorkersThatSleptWakeUp) {
  ThreadPool pool(3);
  expect_exact_cover(pool, 300, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the spin: workers sleep
  expect_exact_cover(pool, 300, 1);
}

TEST(ThreadPoolTest, ProcessWidePoolFollowsSetNumThreads) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    expect_exact_cover(thread_pool(), 777, 1);
  }
  set_num_threads(0);
  EXPECT_EQ(num_threads(), default_num_threads());
  EXPECT_GE(default_num_threads(), 1);
}

}  // namespace
}  // namespace sluice::kernels::cpu
