#pragma once
// A small HTTP/1.1 client for sluice-bench: Boost.Beast over Asio with C++20 coroutines.
// One HttpClient serves many concurrent requests on one io_context thread; it keeps idle
// connections alive and reuses them (a pool that grows to the peak concurrency). No TLS.
// Beast is confined to http_client.cpp (it compiles slowly).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "sluice_bench/bench_options.h"  // Endpoint

namespace sluice::bench {

using Clock = std::chrono::steady_clock;

struct HttpOutcome {
  // Set when no complete response arrived: connect/reset/timeout, with what was going on.
  std::string transport_error;
  int status = 0;
  bool event_stream = false;  // Content-Type: text/event-stream
  std::string body;           // a response that is not an event stream (first 1 MiB)
};

// Called with each server-sent event's data and the time its bytes were read.
using EventHandler = std::function<void(std::string_view data, Clock::time_point arrived)>;

class HttpClient {
 public:
  HttpClient(boost::asio::any_io_executor executor, Endpoint endpoint);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Resolves the endpoint's host (blocking; once, before any request).
  Status resolve();

  // Sends one request (POST with a JSON body when `body` is non-empty, else GET) to
  // endpoint.base_path + `path` with "Authorization: Bearer api_key" when the key is set.
  // An event-stream response goes to `on_event` as it arrives (an empty handler drops it);
  // any other body is returned. `timeout` bounds the whole exchange. A kept-alive
  // connection the server closed while idle is retried once on a new one. Coroutines of
  // one client must run on one thread (the client is not locked).
  boost::asio::awaitable<HttpOutcome> request(std::string path, std::string body,
                                              std::string api_key,
                                              std::chrono::milliseconds timeout,
                                              EventHandler on_event);

  int64_t num_connections_opened() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A blocking client for set-up calls (model list, /tokenize, probes): its own io_context,
// with a kept-alive connection between calls.
class SyncHttpClient {
 public:
  explicit SyncHttpClient(Endpoint endpoint);
  ~SyncHttpClient();
  Status resolve();
  // GET when `body` is empty, else POST. A transport failure is UNAVAILABLE.
  StatusOr<HttpOutcome> call(std::string path, std::string body, std::string api_key,
                             std::chrono::milliseconds timeout = std::chrono::seconds(120));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::bench
