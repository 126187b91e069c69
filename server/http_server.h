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
// - Draining (after SIGINT/SIGTERM in run(), or drain()): requests get 503 with Retry-After and
//   Connection: close (except on routes registered with while_draining: /health, /ready),
//   requests in flight finish until drain_timeout, then run() returns. The listener stays
//   open meanwhile so that new clients and probes get that 503 rather than a refused
//   connection. A second signal makes run() return at once.
//
// - max_connections (0: unlimited): a connection beyond it is still accepted, answered at
//   once with 503 service_unavailable (code "too_many_connections"), Retry-After: 1 and
//   Connection: close, and closed (after draining what the client sends, for at most a
//   second, so that it reads the answer rather than a reset). It is never left hanging.
// - allowed_origins (CORS; empty: off): a request whose Origin is listed (or any, with "*")
//   gets Access-Control-Allow-Origin (that origin, echoed), Vary: Origin and
//   Access-Control-Expose-Headers on every response; a preflight (OPTIONS with
//   Access-Control-Request-Method) on a known path is answered 204 with the path's methods,
//   the requested headers and Access-Control-Max-Age, before any route or key check. A
//   preflight from an origin not listed gets 403 (OpenAI's error JSON). With CORS off,
//   nothing changes: no CORS headers, OPTIONS is a 405 like any other unknown method.
// - request_timeout (0: none), counted from the end of reading a request: a response still
//   waiting on its PendingBody then gets PendingBody::cancel() (the engine stops the work)
//   and the client gets, when non-streamed, 504 with {"error": {"message", "type":
//   "server_error", "param": null, "code": "timeout"}}; when streamed (the 200 is already
//   out), one `data: {"error": {...same...}}` event, then `data: [DONE]`, then the normal end
//   of the chunked body. NOTE: 504, not 408: 408 says the client was too slow to send its
//   request (that is idle_timeout's case), while here the server was too slow to answer.
//   OpenAI's API has no status of its own for it; its SDKs retry 5xx, which fits.
// - on_complete, when set, is called once per answered request after its response has been
//   sent (or abandoned), with an AccessRecord for the access log; also for the requests
//   refused above and for 400/413/431 refusals of unreadable requests.
//
// Slow responses (a completion waits for the engine) never block an io thread: a handler
// returns a HttpResponse carrying a PendingBody, which the connection waits on
// asynchronously. A client that closes its socket meanwhile gets PendingBody::cancel().

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// One answered request, for an access log line (HttpServerOptions::on_complete).
struct AccessRecord {
  // Empty when no request was read: a connection over max_connections, or a request the
  // parser refused before its header was whole (400, 431).
  std::string method;
  std::string path;  // without the query string
  std::string request_id;      // the X-Request-Id the response carried
  std::string remote_address;  // the client's "ip:port" ("[ip6]:port" for IPv6)
  // The status sent; for a stream always 200 (an error after it is an error event). 499
  // (nginx's "client closed request") when the client left before any status line was sent.
  int status = 0;
  // Bytes written to the socket for this response: status line, headers, chunk framing and
  // body (nginx's $bytes_sent).
  uint64_t bytes_sent = 0;
  // From the end of reading the request's header (or the accept, for a refused connection)
  // to the last byte sent, or to noticing that the client left.
  std::chrono::microseconds duration{0};
  bool client_disconnected = false;  // the client left before the whole response was sent
  bool timed_out = false;            // request_timeout ended it (504, or a stream's error event)
};

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
  // Connections open at once (0: unlimited); see the header comment for the refusal.
  size_t max_connections = 0;
  // A response must be complete within this from the end of reading its request (0: no
  // limit); see the header comment for what the client gets.
  std::chrono::milliseconds request_timeout{0};
  // CORS: origins (scheme://host[:port], compared exactly) whose pages may call the API, or
  // "*" for any; empty: no CORS (see the header comment).
  std::vector<std::string> allowed_origins;
  // Called on an io thread after each response (see AccessRecord); must be quick (format
  // and write a log line) and must not throw (an exception is logged and dropped).
  std::function<void(const AccessRecord&)> on_complete;
  // Called once, on an io thread, when the first SIGINT/SIGTERM (or drain()) starts the
  // drain (the other front ends stop taking work).
  std::function<void()> on_drain;
  // When set, SIGHUP is caught (not fatal) and each one calls this on an io thread, e.g. to
  // reload a configuration file. Unset: SIGHUP keeps its default action.
  std::function<void()> on_sighup;
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
  // Starts the drain as the first SIGINT/SIGTERM does (any thread; a no-op once draining).
  // `timeout` replaces drain_timeout for this drain.
  void drain(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // The drain timeout in force (drain_timeout, or the one drain() was given).
  std::chrono::milliseconds drain_timeout() const;
  // True from the first signal on: /ready reports 503.
  bool draining() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::server
