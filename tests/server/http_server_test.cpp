// HttpServer on a real socket (port 0): request_timeout for collected and streamed bodies,
// max_connections refusals, and the on_complete access records.

#include "server/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace sluice::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A body that produces `first` (if any) at once and then nothing, until cancelled.
class StallingBody : public PendingBody {
 public:
  explicit StallingBody(std::string first = "") : first_(std::move(first)) {}
  void on_ready(std::function<void()> wake) override {
    if (!first_.empty()) wake();
  }
  bool take(std::string* out) override {
    *out += first_;
    first_.clear();
    return false;
  }
  void cancel() override { cancelled = true; }

  std::atomic<bool> cancelled{false};

 private:
  std::string first_;
};

// Runs an HttpServer on 127.0.0.1:0 in a thread, and records on_complete calls.
class TestServer {
 public:
  explicit TestServer(HttpServerOptions opt, std::function<void(HttpServer&)> add_routes) {
    opt.host = "127.0.0.1";
    opt.port = 0;
    opt.io_threads = 2;
    opt.on_complete = [this](const AccessRecord& r) {
      std::lock_guard<std::mutex> lock(mu_);
      records_.push_back(r);
      cv_.notify_all();
    };
    server_ = std::make_unique<HttpServer>(std::move(opt));
    add_routes(*server_);
    auto err = server_->start();
    EXPECT_FALSE(err.has_value()) << *err;
    thread_ = std::thread([this] { server_->run(); });
  }
  ~TestServer() {
    server_->stop();
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }

  // Waits for at least `n` records and returns them all.
  std::vector<AccessRecord> wait_records(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, 10s, [&] { return records_.size() >= n; }))
        << records_.size() << " records, expected " << n;
    return records_;
  }

 private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<AccessRecord> records_;
};

// A blocking client connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  void send(const std::string& method, const std::string& target, const std::string& body = "",
            bool keep_alive = true) {
    http::request<http::string_body> req{method == "POST" ? http::verb::post : http::verb::get,
                                         target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("X-Request-Id", "test-id-1");
    req.body() = body;
    req.keep_alive(keep_alive);
    req.prepare_payload();
    http::write(socket_, req);
  }
  // A request written as is (any method, any headers).
  void send_raw(const std::string& text) { asio::write(socket_, asio::buffer(text)); }
  http::response<http::string_body> read() {
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    return res;
  }
  // True when the server closed the connection (EOF on the next read).
  bool closed_by_server() {
    char c;
    beast::error_code ec;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
  void close() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

HttpResponse ok_response(const HttpRequest&) {
  HttpResponse r;
  r.body = R"({"ok":true})";
  return r;
}

TEST(HttpServerTest, CollectedBodyTimesOutWith504AndIsCancelled) {
  auto body = std::make_shared<StallingBody>();
  HttpServerOptions opt;
  opt.request_timeout = 200ms;
  TestServer srv(opt, [&](HttpServer& s) {
    s.route("POST", "/v1/completions", [&](const HttpRequest&) {
      HttpResponse r;
      r.pending = body;
      return r;
    });
  });
  Client c(srv.port());
  const auto start = std::chrono::steady_clock::now();
  c.send("POST", "/v1/completions", "{}");
  const auto res = c.read();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_EQ(res.result_int(), 504);
  EXPECT_EQ(res["X-Request-Id"], "test-id-1");
  const auto j = nlohmann::json::parse(res.body());
  EXPECT_EQ(j["error"]["type"], "server_error");
  EXPECT_EQ(j["error"]["code"], "timeout");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_TRUE(body->cancelled.load());

  // The connection stays usable, and the record says what happened.
  const auto recs = srv.wait_records(1);
  EXPECT_EQ(recs[0].status, 504);
  EXPECT_TRUE(recs[0].timed_out);
  EXPECT_FALSE(recs[0].client_disconnected);
  EXPECT_EQ(recs[0].method, "POST");
  EXPECT_EQ(recs[0].path, "/v1/completions");
  EXPECT_EQ(recs[0].request_id, "test-id-1");
  EXPECT_GT(recs[0].bytes_sent, res.body().size());
  EXPECT_GE(recs[0].duration, 200ms);
}

TEST(HttpServerTest, StreamedBodyTimesOutWithErrorEventAndDone) {
  auto body = std::make_shared<StallingBody>("data: {\"n\":1}\n\n");
  HttpServerOptions opt;
  opt.request_timeout = 200ms;
  TestServer srv(opt, [&](HttpServer& s) {
    s.route("POST", "/v1/completions", [&](const HttpRequest&) {
      HttpResponse r;
      r.pending = body;
      r.streamed = true;
      r.content_type = "text/event-stream";
      return r;
    });
  });
  Client c(srv.port());
  c.send("POST", "/v1/completions", "{}");
  const auto res = c.read();  // the chunked body ends properly
  EXPECT_EQ(res.result_int(), 200);
  const std::string& b = res.body();
  ASSERT_EQ(b.rfind("data: {\"n\":1}\n\n", 0), 0u) << b;
  const std::string tail = b.substr(std::string("data: {\"n\":1}\n\n").size());
  const std::string done = "data: [DONE]\n\n";
  ASSERT_GE(tail.size(), done.size());
  EXPECT_EQ(tail.substr(tail.size() - done.size()), done);
  ASSERT_EQ(tail.rfind("data: ", 0), 0u);
  const auto event = nlohmann::json::parse(tail.substr(6, tail.find("\n\n") - 6));
  EXPECT_EQ(event["error"]["code"], "timeout");
  EXPECT_EQ(event["error"]["type"], "server_error");
  EXPECT_TRUE(body->cancelled.load());
  const auto recs = srv.wait_records(1);
  EXPECT_EQ(recs[0].status, 200);
  EXPECT_TRUE(recs[0].timed_out);
  EXPECT_FALSE(recs[0].client_disconnected);
}

TEST(HttpServerTest, NoTimeoutByDefaultAndDisconnectIsRecorded) {
  auto body = std::make_shared<StallingBody>();
  TestServer srv(HttpServerOptions{}, [&](HttpServer& s) {
    s.route("POST", "/slow", [&](const HttpRequest&) {
      HttpResponse r;
      r.pending = body;
      return r;
    });
  });
  {
    Client c(srv.port());
    c.send("POST", "/slow", "{}");
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(body->cancelled.load());
    c.close();
  }
  const auto recs = srv.wait_records(1);
  EXPECT_TRUE(body->cancelled.load());
  EXPECT_TRUE(recs[0].client_disconnected);
  EXPECT_FALSE(recs[0].timed_out);
  EXPECT_EQ(recs[0].status, 499);
  EXPECT_EQ(recs[0].bytes_sent, 0u);
}

TEST(HttpServerTest, AccessRecordForPlainResponses) {
  TestServer srv(HttpServerOptions{}, [](HttpServer& s) { s.route("GET", "/health", ok_response); });
  Client c(srv.port());
  c.send("GET", "/health?x=1");
  const auto ok = c.read();
  EXPECT_EQ(ok.result_int(), 200);
  c.send("GET", "/missing");
  const auto missing = c.read();
  EXPECT_EQ(missing.result_int(), 404);
  const auto recs = srv.wait_records(2);
  EXPECT_EQ(recs[0].method, "GET");
  EXPECT_EQ(recs[0].path, "/health");
  EXPECT_EQ(recs[0].status, 200);
  EXPECT_EQ(recs[0].request_id, "test-id-1");
  EXPECT_EQ(recs[0].remote_address.rfind("127.0.0.1:", 0), 0u) << recs[0].remote_address;
  EXPECT_GT(recs[0].bytes_sent, ok.body().size());
  EXPECT_FALSE(recs[0].client_disconnected);
  EXPECT_FALSE(recs[0].timed_out);
  EXPECT_EQ(recs[1].path, "/missing");
  EXPECT_EQ(recs[1].status, 404);
}

TEST(HttpServerTest, ConnectionsOverTheLimitGet503AndAreClosed) {
  HttpServerOptions opt;
  opt.max_connections = 1;
  TestServer srv(opt, [](HttpServer& s) { s.route("GET", "/health", ok_response); });
  Client first(srv.port());
  first.send("GET", "/health");  // answered: the server has counted this connection
  EXPECT_EQ(first.read().result_int(), 200);

  Client second(srv.port());
  second.send("GET", "/health");
  const auto res = second.read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res[http::field::retry_after], "1");
  EXPECT_FALSE(res.keep_alive());  // Connection: close
  const auto j = nlohmann::json::parse(res.body());
  EXPECT_EQ(j["error"]["type"], "service_unavailable");
  EXPECT_EQ(j["error"]["code"], "too_many_connections");
  EXPECT_TRUE(second.closed_by_server());

  // The first connection still works; once it closes, its place is free again.
  first.send("GET", "/health");
  EXPECT_EQ(first.read().result_int(), 200);
  first.close();
  int status = 0;
  for (int attempt = 0; attempt < 100 && status != 200; ++attempt) {
    Client third(srv.port());
    third.send("GET", "/health");
    status = third.read().result_int();
    if (status != 200) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(status, 200);

  bool saw_refusal = false;
  for (const AccessRecord& r : srv.wait_records(4)) {
    if (r.status != 503) continue;
    saw_refusal = true;
    EXPECT_TRUE(r.method.empty());
    EXPECT_FALSE(r.request_id.empty());
  }
  EXPECT_TRUE(saw_refusal);
}

std::string preflight_request(const std::string& path, const std::string& origin) {
  return "OPTIONS " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " + origin +
         "\r\nAccess-Control-Request-Method: POST\r\n"
         "Access-Control-Request-Headers: authorization, content-type\r\n\r\n";
}

std::string get_with_origin(const std::string& path, const std::string& origin) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " + origin + "\r\n\r\n";
}

void add_cors_routes(HttpServer& s) {
  s.route("GET", "/health", ok_response);
  s.route("POST", "/v1/completions", ok_response);
}

TEST(HttpServerCors, OffByDefault) {
  TestServer srv(HttpServerOptions{}, add_cors_routes);
  Client c(srv.port());
  c.send_raw(preflight_request("/v1/completions", "https://app.example"));
  const auto pre = c.read();
  EXPECT_EQ(pre.result_int(), 405);
  EXPECT_EQ(pre.count("Access-Control-Allow-Origin"), 0u);
  c.send_raw(get_with_origin("/health", "https://app.example"));
  const auto get = c.read();
  EXPECT_EQ(get.result_int(), 200);
  EXPECT_EQ(get.count("Access-Control-Allow-Origin"), 0u);
}

TEST(HttpServerCors, ListedOriginsGetPreflightAndHeaders) {
  HttpServerOptions opt;
  opt.allowed_origins = {"https://app.example", "http://localhost:3000"};
  TestServer srv(opt, add_cors_routes);
  Client c(srv.port());

  c.send_raw(preflight_request("/v1/completions", "https://app.example"));
  const auto pre = c.read();
  EXPECT_EQ(pre.result_int(), 204);
  EXPECT_EQ(pre["Access-Control-Allow-Origin"], "https://app.example");
  EXPECT_EQ(pre["Access-Control-Allow-Methods"], "POST, OPTIONS");
  EXPECT_EQ(pre["Access-Control-Allow-Headers"], "authorization, content-type");
  EXPECT_EQ(pre["Access-Control-Max-Age"], "600");
  EXPECT_EQ(pre["Vary"], "Origin");
  EXPECT_TRUE(pre.body().empty());

  c.send_raw(get_with_origin("/health", "http://localhost:3000"));
  const auto get = c.read();
  EXPECT_EQ(get.result_int(), 200);
  EXPECT_EQ(get["Access-Control-Allow-Origin"], "http://localhost:3000");
  EXPECT_NE(get["Access-Control-Expose-Headers"].find("X-Request-Id"), std::string::npos);

  // Not listed: a refused preflight, and no CORS headers on a plain request (the browser
  // then keeps the answer from the page).
  c.send_raw(preflight_request("/v1/completions", "https://evil.example"));
  const auto refused = c.read();
  EXPECT_EQ(refused.result_int(), 403);
  EXPECT_NE(refused.body().find("origin_not_allowed"), std::string::npos) << refused.body();
  EXPECT_EQ(refused.count("Access-Control-Allow-Origin"), 0u);
  c.send_raw(get_with_origin("/health", "https://evil.example"));
  const auto plain = c.read();
  EXPECT_EQ(plain.result_int(), 200);
  EXPECT_EQ(plain.count("Access-Control-Allow-Origin"), 0u);

  // Unknown path: 404 as ever; OPTIONS without Access-Control-Request-Method is no preflight.
  c.send_raw(preflight_request("/nowhere", "https://app.example"));
  EXPECT_EQ(c.read().result_int(), 404);
  c.send_raw("OPTIONS /health HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 405);
}

TEST(HttpServerCors, StarAllowsAnyOriginEchoed) {
  HttpServerOptions opt;
  opt.allowed_origins = {"*"};
  TestServer srv(opt, add_cors_routes);
  Client c(srv.port());
  c.send_raw(preflight_request("/health", "https://anything.example"));
  const auto pre = c.read();
  EXPECT_EQ(pre.result_int(), 204);
  EXPECT_EQ(pre["Access-Control-Allow-Origin"], "https://anything.example");
  EXPECT_EQ(pre["Access-Control-Allow-Methods"], "GET, OPTIONS");
}

}  // namespace
}  // namespace sluice::server
