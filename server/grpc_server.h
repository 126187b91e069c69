#pragma once
// GrpcServer: the gRPC API of `sluice serve` (proto/sluice/v1/inference.proto, INTERFACES.md
// "gRPC API"): service sluice.v1.Inference (Generate, Abort, Tokenize, ListModels,
// GetLoad), sluice.v1.Admin (admin.proto) and the standard grpc.health.v1.Health, on
// their own port.
//
// Generate is validated exactly as the HTTP API validates a request: the GenerateRequest
// becomes the JSON body that POST /v1/chat/completions (messages) or /v1/completions (text
// or token ids) would take, and goes through frontend::parse_request, prepare_generation
// and a GenerationJob. ApiErrors map to status codes: 400 INVALID_ARGUMENT, 401
// UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 and 503 queue-full
// RESOURCE_EXHAUSTED, 503 draining UNAVAILABLE, anything else INTERNAL; the message names
// the proto field to blame, which also comes as trailing metadata `sluice-error-param`.
//
// Streams use gRPC's callback API (no thread per stream): a stream writes as its job wakes
// it, one write in flight at a time, merging updates that arrive meanwhile. A client's
// cancel or deadline, and Abort, cancel the job (the engine drops the request within one
// step). Every Inference RPC needs the metadata `authorization: Bearer KEY` with a tenant's
// key unless the daemon is open (ServeContext::tenants); Abort reaches only the caller's own
// tenant's streams. sluice.v1.Admin (TenantUsage, Reload, Drain) is served only with a
// tenants file (else UNIMPLEMENTED) and needs its admin key; Health is open (INTERFACES.md,
// "Auth matrix").
//
// gRPC headers stay inside grpc_server.cpp (they compile slowly).

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "server/serve_context.h"

namespace sluice::server {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 50051;                       // 0: any free port (see GrpcServer::port())
  size_t max_message_bytes = 8ull << 20;  // largest request message accepted
};

class GrpcServer {
 public:
  // `ctx` must outlive the server.
  GrpcServer(ServeContext& ctx, GrpcServerOptions opts);
  // Shuts down at once (shutdown(0)) if still serving.
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and starts serving (on gRPC's own threads). Returns an error text when the port
  // cannot be bound. Call once.
  std::optional<std::string> start();
  // The bound port (the chosen one when the options said 0); 0 before start().
  int port() const;
  // Health turns NOT_SERVING and new Generate calls get UNAVAILABLE; running streams go on.
  // Idempotent, thread-safe.
  void begin_drain();
  // begin_drain(), then waits up to `deadline` for running streams to end, then ends the
  // rest with UNAVAILABLE (their engine requests aborted) and stops the server. Returns
  // when every call is done: the engine may be stopped afterwards. Idempotent.
  void shutdown(std::chrono::milliseconds deadline);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::server
