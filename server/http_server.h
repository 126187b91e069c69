#pragma once
// HttpServer: HTTP/1.1 on Boost.Beast and Asio with C++20 coroutines. One io_context run by
// a few threads serves every connection (one coroutine each, no thread per connection).
// Beast and Asio stay inside http_server.cpp: they compile slowly, and nothing else needs
// them.
//
// What the server guarantees, whatever the handlers do:
// - Keep-alive as the client asks, closed after idle_timeout without a whole request; a request line plus headers over max_header_bytes gets
//   431, a body over max_body_bytes gets 413 before it is buffered (Content-Length checked
//   at the header; a chunked body as it arrives); both close the connection.
// - Unknown path: 404; known path, wrong method: 405 with Allow. Errors are OpenAI's JSON
//   ({"error": {"message", "type", "param", "code"}}).
// - Every response carries X-Request-Id: the client's (when it is a sane token of at most
//   128 printable bytes) or a fresh one, available to handlers as HttpRequest::request_id.
// - Draining (after SIGINT/SIGTERM in run()): requests get 503 with Retry-After and
//   Connection: close (except on routes registered with while_draining: /health, /ready),
//   requests in flight finish until drain_timeout, then run() returns. The listener stays
//   open meanwhile so that new clients and probes get that 503 rather than a refused
//   connection. A second signal makes run() return at once.
//
// Slow responses (a completion waits for the engine) never block an io thread: a handler
// returns a HttpResponse carrying a PendingBody, which the connection waits on
// asynchronously. A client that closes its socket meanwhile gets PendingBody::cancel().

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // target without the query string
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string request_id;  // the X-Request-Id the response carries

  // The first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

// The body of a response that is produced later, possibly in parts, from other threads
// (the engine's). The connection calls its methods on one io thread at a time.
class PendingBody {
 public:
  virtual ~PendingBody() = default;
  // Arranges for `wake` to be called once, from any thread, when take() has something new
  // (at once, from inside this call, when it already has). Never called twice without a
  // take() in between.
  virtual void on_ready(std::function<void()> wake) = 0;
  // Appends what is ready to *out. Returns true when the body is complete.
  // Non-streamed bodies: called until it returns true; the final status and headers are
  // then read from final_status()/final_content_type().
  virtual bool take(std::string* out) = 0;
  // The client went away: stop the work behind it. take() is not called again.
  virtual void cancel() = 0;
  // Non-streamed bodies only: the status once take() returned true (an engine failure
  // can turn a 200 into a 500).
  virtual int final_status() const { return 200; }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // When set, `body` is ignored and the body comes from here. streamed: sent as it comes
  // with chunked transfer encoding (status fixed at 200 up front; Server-Sent Events);
  // otherwise collected whole, then sent with final_status().
  std::shared_ptr<PendingBody> pending;
  bool streamed = false;
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;

// {"error": {"message", "type", "param", "code"}} with the status (OpenAI's error shape).
HttpResponse error_response(int status, std::string_view type, std::string_view message,
                            std::optional<std::string_view> param = std::nullopt,
                            std::optional<std::string_view> code = std::nullopt);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: any free port (see HttpServer::port())
  int io_threads = 2;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 64u << 10;
  std::chrono::milliseconds drain_timeout{30000};
  // A request must arrive whole within this (from the end of the previous response on a
  // kept-alive connection); otherwise the connection is closed.
  std::chrono::milliseconds idle_timeout{60000};
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes `method` + exact `path` to `handler`. A `path` ending in "/*" matches every
  // path under that prefix (one or more further bytes). `while_draining`: still served
  // after the first signal (health probes); other routes then get 503. Register before
  // start().
  void route(std::string method, std::string path, Handler handler, bool while_draining = false);

  // Binds and listens; the error text on failure (address in use, bad host).
  std::optional<std::string> start();
  uint16_t port() const;  // the bound port, after start()
  // Serves until SIGINT/SIGTERM and the drain that follows (or stop()); returns when every
  // io thread has stopped.
  void run();
  // Stops at once (any thread).
  void stop();
  // True from the first signal on: /ready reports 503.
  bool draining() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::server
