#include "sluice_bench/http_client.h"

#include <fmt/format.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <vector>

#include "sluice_bench/openai_wire.h"  // SseParser

namespace sluice::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr size_t kMaxPlainBody = 1 << 20;
constexpr size_t kReadChunk = 16 * 1024;
}  // namespace

struct HttpClient::Impl {
  asio::any_io_executor executor;
  Endpoint endpoint;
  tcp::resolver::results_type addresses;
  std::vector<std::unique_ptr<beast::tcp_stream>> idle;  // kept-alive connections
  int64_t opened = 0;
};

HttpClient::HttpClient(asio::any_io_executor executor, Endpoint endpoint)
    : impl_(std::make_unique<Impl>()) {
  impl_->executor = std::move(executor);
  impl_->endpoint = std::move(endpoint);
}

HttpClient::~HttpClient() = default;

Status HttpClient::resolve() {
  tcp::resolver resolver(impl_->executor);
  beast::error_code ec;
  impl_->addresses = resolver.resolve(impl_->endpoint.host, impl_->endpoint.port, ec);
  if (ec) {
    return Status::unavailable(fmt::format("cannot resolve {}:{}: {}", impl_->endpoint.host,
                                           impl_->endpoint.port, ec.message()));
  }
  return Status::ok();
}

int64_t HttpClient::num_connections_opened() const { return impl_->opened; }

asio::awaitable<HttpOutcome> HttpClient::request(std::string path, std::string body,
                                                 std::string api_key,
                                                 std::chrono::milliseconds timeout,
                                                 EventHandler on_event) {
  Impl& m = *impl_;
  http::request<http::string_body> req{body.empty() ? http::verb::get : http::verb::post,
                                       m.endpoint.base_path + path, 11};
  req.set(http::field::host, m.endpoint.host_header());
  req.set(http::field::user_agent, "sluice-bench");
  req.set(http::field::accept, "application/json, text/event-stream");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  HttpOutcome out;
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<beast::tcp_stream> conn;
    const bool reused = !m.idle.empty();
    beast::error_code ec;
    if (reused) {
      conn = std::move(m.idle.back());
      m.idle.pop_back();
      conn->expires_after(timeout);
    } else {
      conn = std::make_unique<beast::tcp_stream>(m.executor);
      conn->expires_after(timeout);
      co_await conn->async_connect(m.addresses, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        out.transport_error =
            fmt::format("connect to {}: {}", m.endpoint.host_header(), ec.message());
        co_return out;
      }
      ++m.opened;
      conn->socket().set_option(tcp::no_delay(true), ec);
    }
    // NOTE: a server may close a kept-alive connection while it sits in the pool; that
    // shows as an error before any response byte, and only then is the request resent.
    const auto retry_or_fail = [&](std::string_view what) {
      if (reused && attempt == 0) return true;
      out.transport_error = fmt::format("{}: {}", what, ec.message());
      return false;
    };
    co_await http::async_write(*conn, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (retry_or_fail("sending the request")) continue;
      co_return out;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    co_await http::async_read_header(*conn, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (retry_or_fail("reading the response header")) continue;
      co_return out;
    }
    out.status = static_cast<int>(parser.get().result_int());
    const std::string_view type = parser.get()[http::field::content_type];
    out.event_stream = type.substr(0, 17) == "text/event-stream";
    SseParser sse;
    std::vector<std::string> events;
    std::array<char, kReadChunk> chunk;
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      // async_read_some returns as soon as some body bytes are parsed, so each event is
      // timed when it arrives (async_read would wait for the buffer to fill).
      co_await http::async_read_some(*conn, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        out.transport_error = fmt::format("reading the response body: {}", ec.message());
        co_return out;
      }
      const size_t n = chunk.size() - parser.get().body().size;
      if (n == 0) continue;
      const Clock::time_point now = Clock::now();
      if (out.event_stream) {
        sse.feed(std::string_view(chunk.data(), n), &events);
        for (const std::string& e : events) {
          if (on_event) on_event(e, now);
        }
        events.clear();
      } else if (out.body.size() < kMaxPlainBody) {
        out.body.append(chunk.data(), std::min(n, kMaxPlainBody - out.body.size()));
      }
    }
    if (out.event_stream) {
      if (std::optional<std::string> last = sse.finish(); last && on_event)
        on_event(*last, Clock::now());
    }
    if (parser.keep_alive()) {
      conn->expires_never();
      m.idle.push_back(std::move(conn));
    } else {
      conn->socket().shutdown(tcp::socket::shutdown_both, ec);
    }
    co_return out;
  }
}

struct SyncHttpClient::Impl {
  asio::io_context ioc;
  HttpClient client;
  explicit Impl(Endpoint ep) : client(ioc.get_executor(), std::move(ep)) {}
};

SyncHttpClient::SyncHttpClient(Endpoint endpoint)
    : impl_(std::make_unique<Impl>(std::move(endpoint))) {}
SyncHttpClient::~SyncHttpClient() = default;

Status SyncHttpClient::resolve() { return impl_->client.resolve(); }

StatusOr<HttpOutcome> SyncHttpClient::call(std::string path, std::string body, std::string api_key,
                                           std::chrono::milliseconds timeout) {
  HttpOutcome out;
  std::string plain;  // an event stream's data, joined, for callers that want it
  auto task = [&]() -> asio::awaitable<void> {
    out =
        co_await impl_->client.request(std::move(path), std::move(body), std::move(api_key),
                                       timeout, [&plain](std::string_view data, Clock::time_point) {
                                         plain.append(data);
                                         plain += '\n';
                                       });
  };
  impl_->ioc.restart();
  asio::co_spawn(impl_->ioc, task(), asio::detached);
  impl_->ioc.run();
  if (!out.transport_error.empty()) return Status::unavailable(out.transport_error);
  if (out.event_stream) out.body = std::move(plain);
  return out;
}

}  // namespace sluice::bench
