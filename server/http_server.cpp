#include "server/http_server.h"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <exception>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <utility>

#include "common/log.h"

namespace sluice::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// A client's X-Request-Id is echoed only when it is a short token: it lands in logs and
// headers, so nothing that could split a line or a header.
bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

struct Route {
  std::string method;
  std::string path;  // without the trailing "*" for prefix routes
  bool prefix = false;
  bool while_draining = false;
  Handler handler;
};

using Clock = std::chrono::steady_clock;

// Holds one of max_connections' places from the accept to the end of the session.
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::atomic<size_t>& n) : n_(&n) { n_->fetch_add(1); }
  ConnectionSlot(ConnectionSlot&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (n_ != nullptr) n_->fetch_sub(1);
  }

 private:
  std::atomic<size_t>* n_;
};

enum class BodyWait { kReady, kGone, kTimedOut };

// What sending one response came to, for the AccessRecord and the connection's fate.
struct Outcome {
  bool ok = false;  // sent whole: the connection may serve another request
  int status = 0;
  uint64_t bytes_sent = 0;
  bool client_disconnected = false;
  bool timed_out = false;
};

std::string endpoint_text(const tcp::endpoint& ep) {
  const asio::ip::address a = ep.address();
  if (a.is_v6()) return fmt::format("[{}]:{}", a.to_string(), ep.port());
  return fmt::format("{}:{}", a.to_string(), ep.port());
}

// Counts a request as in flight (for the drain) while it lives.
class InFlight {
 public:
  explicit InFlight(std::atomic<int>& n) : n_(n) { n_.fetch_add(1); }
  ~InFlight() { n_.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int>& n_;
};

}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

HttpResponse error_response(int status, std::string_view type, std::string_view message,
                            std::optional<std::string_view> param,
                            std::optional<std::string_view> code) {
  nlohmann::json err = {{"message", message},
                        {"type", type},
                        {"param", nullptr},
                        {"code", nullptr}};
  if (param) err["param"] = *param;
  if (code) err["code"] = *code;
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", std::move(err)}}.dump(-1, ' ', false,
                                                          nlohmann::json::error_handler_t::replace);
  return r;
}

struct HttpServer::Impl {
  explicit Impl(HttpServerOptions o) : opt(std::move(o)) {
    std::random_device rd;
    id_prefix = fmt::format("{:08x}", rd());
  }

  HttpServerOptions opt;
  // Before ioc: coroutine frames that ioc's destructor destroys still count down in them.
  std::atomic<int> in_flight{0};
  std::atomic<size_t> open_connections{0};
  asio::io_context ioc;  // destroyed after everything below, which uses it
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc, SIGINT, SIGTERM};
  asio::signal_set hup_signals{ioc};  // SIGHUP, only with opt.on_sighup
  asio::steady_timer drain_timer{ioc};
  std::atomic<int64_t> drain_timeout_ms{0};
  std::chrono::steady_clock::time_point drain_deadline;
  std::vector<Route> routes;
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> next_id{1};
  std::string id_prefix;
  uint16_t bound_port = 0;

  std::string new_request_id() {
    return fmt::format("req-{}{:08x}", id_prefix, next_id.fetch_add(1));
  }

  // The Origin to echo in Access-Control-Allow-Origin, when CORS is on and it is allowed.
  std::optional<std::string> cors_origin(const HttpRequest& req) const {
    if (opt.allowed_origins.empty()) return std::nullopt;
    const std::optional<std::string_view> origin = req.header("Origin");
    if (!origin || origin->empty()) return std::nullopt;
    for (const std::string& o : opt.allowed_origins) {
      if (o == "*" || o == *origin) return std::string(*origin);
    }
    return std::nullopt;
  }

  // The methods routed for `path` ("GET, POST"), empty when no route matches it.
  std::string methods_for(const std::string& path) const {
    std::string allow;
    for (const Route& r : routes) {
      const bool match = r.prefix ? (path.size() > r.path.size() &&
                                     path.compare(0, r.path.size(), r.path) == 0)
                                  : path == r.path;
      if (match && allow.find(r.method) == std::string::npos) {
        allow += (allow.empty() ? "" : ", ") + r.method;
      }
    }
    return allow;
  }

  // A CORS preflight, answered before routes and keys (a browser sends no key with it).
  std::optional<HttpResponse> preflight(const HttpRequest& req) const {
    if (opt.allowed_origins.empty() || req.method != "OPTIONS" ||
        !req.header("Access-Control-Request-Method")) {
      return std::nullopt;
    }
    const std::string methods = methods_for(req.path);
    if (methods.empty()) return std::nullopt;  // the 404 below
    if (!cors_origin(req)) {
      return error_response(403, "invalid_request_error",
                            "CORS: this Origin is not in the server's --allowed-origins",
                            std::nullopt, "origin_not_allowed");
    }
    HttpResponse r;
    r.status = 204;
    r.content_type.clear();
    r.headers.emplace_back("Access-Control-Allow-Methods", methods + ", OPTIONS");
    const std::optional<std::string_view> asked = req.header("Access-Control-Request-Headers");
    r.headers.emplace_back("Access-Control-Allow-Headers",
                           asked && !asked->empty() ? std::string(*asked)
                                                    : "Authorization, Content-Type, X-Request-Id");
    r.headers.emplace_back("Access-Control-Max-Age", "600");
    return r;
  }

  HttpResponse dispatch(const HttpRequest& req) {
    if (std::optional<HttpResponse> p = preflight(req)) return std::move(*p);
    const bool is_draining = draining.load();
    std::string allow;
    for (const Route& r : routes) {
      const bool match = r.prefix ? (req.path.size() > r.path.size() &&
                                     req.path.compare(0, r.path.size(), r.path) == 0)
                                  : req.path == r.path;
      if (!match) continue;
      if (r.method == req.method) {
        if (is_draining && !r.while_draining) {
          HttpResponse busy = error_response(503, "service_unavailable", "The server is shutting down");
          busy.headers.emplace_back("Retry-After", "1");
          return busy;
        }
        try {
          return r.handler(req);
        } catch (const std::exception& e) {
          SLUICE_LOG_ERROR("{} {} {}: handler failed: {}", req.request_id, req.method, req.path,
                           e.what());
          return error_response(500, "server_error", "internal error");
        }
      }
      if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + r.method;
    }
    if (allow.empty()) {
      return error_response(404, "invalid_request_error",
                            "Not found: no route for this path", std::nullopt, "not_found");
    }
    HttpResponse r = error_response(405, "invalid_request_error",
                                    fmt::format("Method not allowed; this path takes {}", allow),
                                    std::nullopt, "method_not_allowed");
    r.headers.emplace_back("Allow", allow);
    return r;
  }

  struct WatchState {
    bool active = true;
    bool gone = false;
    bool ready = false;
  };

  // Watches for the peer hanging up while nothing is being written: readable with nothing
  // to read means EOF. The peek never blocks (MSG_DONTWAIT): readiness can be reported with
  // no byte there, and a blocking peek would stall the connection's strand (and its wakes)
  // until the client gives up. A spurious wake-up re-arms the watch; a byte that is there
  // (a pipelined request) ends it.
  static void watch_peer(tcp::socket& socket, const std::shared_ptr<WatchState>& state,
                         const std::shared_ptr<asio::steady_timer>& timer) {
    socket.async_wait(tcp::socket::wait_read, [state, timer, &socket](beast::error_code ec) {
      // Runs on the connection's strand; `socket` is alive while state->active.
      if (ec || !state->active) return;
      char c = 0;
      const ssize_t n = ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        watch_peer(socket, state, timer);
        return;
      }
      if (n <= 0) {
        state->gone = true;
        timer->cancel();
      }
    });
  }

  // Waits until `body` has something for take(), the client closes its socket (kGone), or
  // `deadline` passes (kTimedOut). The readiness watch on the socket notices a peer that
  // hung up while nothing is being written (a non-streamed request waiting for the engine).
  asio::awaitable<BodyWait> wait_body(tcp::socket& socket, const std::shared_ptr<PendingBody>& body,
                                      Clock::time_point deadline) {
    auto ex = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(ex, deadline);
    // Touched only on the connection's strand.
    auto state = std::make_shared<WatchState>();
    // The wake may come after this wait ended (a timeout): it then only touches shared state.
    // Moving the expiry into the past (rather than cancel()) also covers a wake that runs
    // before the wait below has started: that wait then completes at once.
    body->on_ready([ex, timer, state] {
      asio::post(ex, [timer, state] {
        state->ready = true;
        timer->expires_at(Clock::time_point::min());
      });
    });
    watch_peer(socket, state, timer);
    beast::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    const bool expired = !ec;
    state->active = false;
    socket.cancel(ec);  // the readiness watch
    // Output that is ready goes first: a peer that left makes the write fail.
    if (state->ready) co_return BodyWait::kReady;
    if (state->gone) co_return BodyWait::kGone;
    if (expired) co_return BodyWait::kTimedOut;
    co_return BodyWait::kReady;
  }

  Clock::time_point deadline_from(Clock::time_point start) const {
    if (opt.request_timeout.count() <= 0) return Clock::time_point::max();
    return start + opt.request_timeout;
  }

  HttpResponse timeout_response() const {
    return error_response(
        504, "server_error",
        fmt::format("The request did not complete within the server's request timeout of {} ms",
                    opt.request_timeout.count()),
        std::nullopt, "timeout");
  }

  void set_common(http::fields& f, const HttpRequest& req, const HttpResponse& resp) {
    f.set(http::field::server, "sluice");
    f.set("X-Request-Id", req.request_id);
    if (std::optional<std::string> origin = cors_origin(req)) {
      f.set("Access-Control-Allow-Origin", *origin);
      f.set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
      f.set(http::field::vary, "Origin");
    }
    for (const auto& [k, v] : resp.headers) f.set(k, v);
  }

  // Adds the bytes written to *bytes_sent.
  asio::awaitable<bool> write_plain(tcp::socket& socket, const HttpRequest& req,
                                    const HttpResponse& resp, int status, std::string body,
                                    unsigned version, bool keep_alive, uint64_t* bytes_sent) {
    http::response<http::string_body> res{static_cast<http::status>(status), version};
    if (!resp.content_type.empty()) res.set(http::field::content_type, resp.content_type);
    set_common(res.base(), req, resp);
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    beast::error_code ec;
    *bytes_sent +=
        co_await http::async_write(socket, res, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  // Sends a streamed body as chunks as it comes, until it completes, the client leaves, or
  // `deadline` passes (then an error event and [DONE] end the stream).
  asio::awaitable<Outcome> write_stream(tcp::socket& socket, const HttpRequest& req,
                                        const HttpResponse& resp, unsigned version,
                                        bool keep_alive, Clock::time_point deadline) {
    Outcome o;
    o.status = 200;
    http::response<http::empty_body> res{http::status::ok, version};
    res.set(http::field::content_type, resp.content_type);
    res.set(http::field::cache_control, "no-cache");
    set_common(res.base(), req, resp);
    res.keep_alive(keep_alive);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    beast::error_code ec;
    auto gone = [&] {
      resp.pending->cancel();
      o.client_disconnected = true;
      return o;
    };
    o.bytes_sent += co_await http::async_write_header(
        socket, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return gone();
    std::string chunk;
    for (;;) {
      chunk.clear();
      const bool done = resp.pending->take(&chunk);
      if (!chunk.empty()) {
        o.bytes_sent += co_await asio::async_write(socket, http::make_chunk(asio::buffer(chunk)),
                                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return gone();
      }
      if (done) break;
      BodyWait w = BodyWait::kTimedOut;
      if (Clock::now() < deadline) w = co_await wait_body(socket, resp.pending, deadline);
      if (w == BodyWait::kGone) co_return gone();
      if (w == BodyWait::kTimedOut) {
        resp.pending->cancel();
        o.timed_out = true;
        const std::string event =
            fmt::format("data: {}\n\ndata: [DONE]\n\n", timeout_response().body);
        o.bytes_sent += co_await asio::async_write(socket, http::make_chunk(asio::buffer(event)),
                                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          o.client_disconnected = true;
          co_return o;
        }
        break;
      }
    }
    o.bytes_sent += co_await asio::async_write(socket, http::make_chunk_last(),
                                               asio::redirect_error(asio::use_awaitable, ec));
    o.client_disconnected = static_cast<bool>(ec);
    o.ok = !ec;
    co_return o;
  }

  // Collects a non-streamed body whole, then sends it; or 504 at `deadline`.
  asio::awaitable<Outcome> write_collected(tcp::socket& socket, const HttpRequest& req,
                                           const HttpResponse& resp, unsigned version,
                                           bool keep_alive, Clock::time_point deadline) {
    Outcome o;
    std::string body;
    while (!resp.pending->take(&body)) {
      BodyWait w = BodyWait::kTimedOut;
      if (Clock::now() < deadline) w = co_await wait_body(socket, resp.pending, deadline);
      if (w == BodyWait::kReady) continue;
      resp.pending->cancel();
      if (w == BodyWait::kGone) {
        o.status = 499;
        o.client_disconnected = true;
        co_return o;
      }
      o.timed_out = true;
      HttpResponse t = timeout_response();
      o.status = t.status;
      o.ok = co_await write_plain(socket, req, t, t.status, std::move(t.body), version, keep_alive,
                                  &o.bytes_sent);
      o.client_disconnected = !o.ok;
      co_return o;
    }
    o.status = resp.pending->final_status();
    o.ok = co_await write_plain(socket, req, resp, o.status, std::move(body), version, keep_alive,
                                &o.bytes_sent);
    o.client_disconnected = !o.ok;
    co_return o;
  }

  void report(AccessRecord& r, Clock::time_point start, const Outcome& o) {
    if (!opt.on_complete) return;
    r.status = o.status;
    r.bytes_sent = o.bytes_sent;
    r.client_disconnected = o.client_disconnected;
    r.timed_out = o.timed_out;
    r.duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    try {
      opt.on_complete(r);
    } catch (const std::exception& e) {
      SLUICE_LOG_ERROR("{}: access hook failed: {}", r.request_id, e.what());
    }
  }

  // A connection over max_connections: answered and closed without reading a request.
  asio::awaitable<void> refuse_connection(tcp::socket socket, std::string remote) {
    const Clock::time_point start = Clock::now();
    HttpRequest req;
    req.request_id = new_request_id();
    HttpResponse busy = error_response(
        503, "service_unavailable",
        fmt::format("Too many open connections (the server's limit is {}); retry later",
                    opt.max_connections),
        std::nullopt, "too_many_connections");
    busy.headers.emplace_back("Retry-After", "1");
    Outcome o;
    o.status = 503;
    o.ok = co_await write_plain(socket, req, busy, busy.status, busy.body, 11, false,
                                &o.bytes_sent);
    o.client_disconnected = !o.ok;
    AccessRecord r;
    r.request_id = req.request_id;
    r.remote_address = std::move(remote);
    report(r, start, o);
    if (o.ok) co_await linger_close(socket);
  }

  // Closes after a refusal without making the client lose it: closing a socket with unread
  // input sends a reset, which can discard our response before the client reads it. So
  // half-close, then read and drop what the client still sends, for a second or 4 MiB at
  // most.
  asio::awaitable<void> linger_close(tcp::socket& socket) {
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    auto ex = co_await asio::this_coro::executor;
    auto alive = std::make_shared<bool>(true);
    asio::steady_timer deadline(ex, std::chrono::seconds(1));
    deadline.async_wait([alive, &socket](beast::error_code e) {
      if (!e && *alive) socket.cancel();
    });
    std::array<char, 16384> scratch;
    size_t total = 0;
    while (total < (4u << 20)) {
      const size_t n = co_await socket.async_read_some(
          asio::buffer(scratch), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      total += n;
    }
    *alive = false;
    deadline.cancel();
  }

  asio::awaitable<void> session(tcp::socket socket, ConnectionSlot slot) {
    (void)slot;  // held until the session ends
    beast::flat_buffer buffer;
    beast::error_code ec;
    std::string remote;
    if (auto ep = socket.remote_endpoint(ec); !ec) remote = endpoint_text(ep);
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(
          std::min<size_t>(opt.max_header_bytes, UINT32_MAX)));
      parser.body_limit(opt.max_body_bytes);
      // The whole request (waiting for it on a kept-alive connection included) must arrive
      // within idle_timeout; a connection that sends nothing, or dribbles, is closed.
      auto reading = std::make_shared<bool>(true);
      asio::steady_timer idle(co_await asio::this_coro::executor, opt.idle_timeout);
      idle.async_wait([reading, &socket](beast::error_code e) {
        beast::error_code ignored;
        if (!e && *reading) socket.cancel(ignored);
      });
      co_await http::async_read_header(socket, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      const Clock::time_point start = Clock::now();
      if (!ec && parser.get()[http::field::expect] == "100-continue") {
        http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
        co_await http::async_write(socket, cont, asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!ec && !parser.is_done()) {
        co_await http::async_read(socket, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
      }
      *reading = false;
      idle.cancel();
      HttpRequest req;
      AccessRecord record;
      record.remote_address = remote;
      if (parser.is_header_done()) {
        record.method = std::string(parser.get().method_string());
        const std::string_view target = parser.get().target();
        record.path = std::string(target.substr(0, target.find('?')));
      }
      if (ec) {
        req.request_id = new_request_id();
        // Refuse what the parser refused, then close: the rest of the stream is unreadable.
        std::optional<HttpResponse> refusal;
        if (ec == http::error::body_limit) {
          refusal = error_response(413, "invalid_request_error",
                                   fmt::format("Request body is larger than the limit of {} bytes",
                                               opt.max_body_bytes),
                                   std::nullopt, "request_too_large");
        } else if (ec == http::error::header_limit) {
          refusal = error_response(431, "invalid_request_error",
                                   fmt::format("Request headers are larger than the limit of {} bytes",
                                               opt.max_header_bytes),
                                   std::nullopt, "request_header_fields_too_large");
        } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          refusal = error_response(400, "invalid_request_error", "Malformed HTTP request");
        }
        if (refusal) {
          Outcome o;
          o.status = refusal->status;
          o.ok = co_await write_plain(socket, req, *refusal, refusal->status, refusal->body, 11,
                                      false, &o.bytes_sent);
          o.client_disconnected = !o.ok;
          record.request_id = req.request_id;
          report(record, start, o);
          co_await linger_close(socket);
        }
        break;
      }
      http::request<http::string_body>& msg = parser.get();
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.path = req.target.substr(0, req.target.find('?'));
      for (const auto& f : msg) req.headers.emplace_back(f.name_string(), f.value());
      if (auto id = req.header("X-Request-Id"); id && sane_request_id(*id)) {
        req.request_id = *id;
      } else {
        req.request_id = new_request_id();
      }
      req.body = std::move(msg.body());
      const unsigned version = msg.version();
      bool keep_alive = msg.keep_alive();

      InFlight counted(in_flight);
      if (draining.load()) keep_alive = false;
      record.request_id = req.request_id;
      const Clock::time_point deadline = deadline_from(start);
      HttpResponse resp = dispatch(req);
      Outcome o;
      if (resp.pending && resp.streamed) {
        o = co_await write_stream(socket, req, resp, version, keep_alive, deadline);
      } else if (resp.pending) {
        o = co_await write_collected(socket, req, resp, version, keep_alive, deadline);
      } else {
        o.status = resp.status;
        o.ok = co_await write_plain(socket, req, resp, resp.status, std::move(resp.body), version,
                                    keep_alive, &o.bytes_sent);
        o.client_disconnected = !o.ok;
      }
      report(record, start, o);
      if (!o.ok || !keep_alive) break;
    }
    socket.shutdown(tcp::socket::shutdown_send, ec);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      tcp::socket socket(asio::make_strand(ioc));
      beast::error_code ec;
      co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open()) co_return;
        // Out of descriptors and the like: back off instead of spinning.
        asio::steady_timer t(ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      auto ex = socket.get_executor();
      if (opt.max_connections > 0 && open_connections.load() >= opt.max_connections) {
        std::string remote;
        if (auto ep = socket.remote_endpoint(ec); !ec) remote = endpoint_text(ep);
        asio::co_spawn(ex, refuse_connection(std::move(socket), std::move(remote)),
                       asio::detached);
        continue;
      }
      // Counted here, not in the session, so that a burst of accepts cannot overshoot.
      ConnectionSlot slot(open_connections);
      asio::co_spawn(ex, session(std::move(socket), std::move(slot)), asio::detached);
    }
  }

  void poll_drain() {
    if (in_flight.load() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      if (in_flight.load() != 0) {
        SLUICE_LOG_WARN("drain timeout: {} requests still in flight", in_flight.load());
      }
      ioc.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([this](beast::error_code ec) {
      if (!ec) poll_drain();
    });
  }

  void on_signal(int sig) {
    if (draining.exchange(true)) {  // drain() came first: a signal now exits at once
      ioc.stop();
      return;
    }
    SLUICE_LOG_INFO("signal {}: draining (up to {} ms); a second signal exits at once", sig,
                    drain_timeout_ms.load());
    begin_drain();
  }

  // On an io thread, once: the drain, whatever started it. `draining` is already set.
  void begin_drain() {
    if (opt.on_drain) opt.on_drain();
    drain_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_timeout_ms.load());
    signals.async_wait([this](beast::error_code e, int) {
      if (!e) ioc.stop();
    });
    poll_drain();
  }

  void wait_hup() {
    hup_signals.async_wait([this](beast::error_code e, int) {
      if (e) return;
      try {
        opt.on_sighup();
      } catch (const std::exception& ex) {
        SLUICE_LOG_ERROR("SIGHUP handler failed: {}", ex.what());
      }
      wait_hup();
    });
  }
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->drain_timeout_ms = impl_->opt.drain_timeout.count();
}

HttpServer::~HttpServer() = default;

void HttpServer::route(std::string method, std::string path, Handler handler,
                       bool while_draining) {
  Route r;
  r.while_draining = while_draining;
  r.method = std::move(method);
  if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0) {
    r.prefix = true;
    path.pop_back();
  }
  r.path = std::move(path);
  r.handler = std::move(handler);
  impl_->routes.push_back(std::move(r));
}

std::optional<std::string> HttpServer::start() {
  Impl& m = *impl_;
  beast::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(m.opt.host, ec);
  if (ec) return fmt::format("--host {}: not an IP address", m.opt.host);
  const tcp::endpoint ep(addr, m.opt.port);
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fmt::format("cannot listen on {}:{}: {}", m.opt.host, m.opt.port, ec.message());
  m.bound_port = m.acceptor.local_endpoint().port();
  m.signals.async_wait([&m](beast::error_code e, int sig) {
    if (!e) m.on_signal(sig);
  });
  if (m.opt.on_sighup) {
    m.hup_signals.add(SIGHUP, ec);
    if (ec) return fmt::format("cannot catch SIGHUP: {}", ec.message());
    m.wait_hup();
  }
  asio::co_spawn(m.ioc, m.accept_loop(), asio::detached);
  return std::nullopt;
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::run() {
  std::vector<std::thread> threads;
  for (int i = 1; i < impl_->opt.io_threads; ++i) threads.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (std::thread& t : threads) t.join();
}

void HttpServer::stop() { impl_->ioc.stop(); }

void HttpServer::drain(std::optional<std::chrono::milliseconds> timeout) {
  Impl& m = *impl_;
  if (m.draining.exchange(true)) return;
  if (timeout) m.drain_timeout_ms = timeout->count();
  SLUICE_LOG_INFO("drain requested: draining (up to {} ms); a signal exits at once", m.drain_timeout_ms.load());
  asio::post(m.ioc, [&m] { m.begin_drain(); });
}

std::chrono::milliseconds HttpServer::drain_timeout() const {
  return std::chrono::milliseconds(impl_->drain_timeout_ms.load());
}

bool HttpServer::draining() const { return impl_->draining.load(); }

}  // namespace sluice::server
