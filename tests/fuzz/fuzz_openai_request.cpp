// libFuzzer harness for the OpenAI request validator (frontend/openai_request.h), the first
// code an untrusted HTTP or gRPC body reaches. The first input byte picks the endpoint; the
// rest is the body. Any input must end in a ParsedRequest whose sampling parameters pass
// sampling::validate(), or in an ApiError with a 4xx status, a type and a non-empty
// message: never a crash, a hang, unbounded memory, or a sanitizer report.
//
// Seeds: tests/fuzz/corpus/fuzz_openai_request/ (chat and completions bodies of every shape).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "frontend/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace sluice::frontend;
  const Endpoint endpoint = (data[0] & 1) ? Endpoint::kCompletions : Endpoint::kChatCompletions;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  RequestLimits limits;
  limits.vocab_size = 262144;
  limits.max_model_len = 32768;
  auto result = parse_request(endpoint, body, limits);
  if (auto* error = std::get_if<ApiError>(&result)) {
    if (error->http_status < 400 || error->http_status >= 500 || error->message.empty() ||
        error->type.empty()) {
      std::abort();
    }
    return 0;
  }
  auto& request = std::get<ParsedRequest>(result);
  if (!sluice::sampling::validate(request.sampling, limits.vocab_size, limits.max_logprobs).is_ok()) {
    std::abort();
  }
  (void)check_context(request, 100, limits);
  return 0;
}
