#pragma once
// What sluice-bench asks the server before a run (blocking calls): the model list, whether
// /tokenize works (to size text prompts exactly), the token-id range it accepts (for
// random token-id prompts), and a warm-up request that also finds out whether the server
// takes ignore_eos.

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "sluice_bench/dataset.h"
#include "sluice_bench/http_client.h"
#include "sluice_bench/openai_wire.h"

namespace sluice::bench {

class ServerProbe {
 public:
  ServerProbe(SyncHttpClient& client, std::string api_key)
      : client_(client), api_key_(std::move(api_key)) {}

  // The first model of GET /v1/models.
  StatusOr<std::string> first_model();

  // Whether POST /tokenize answers for `model` (vLLM and sluice with a tokenizer do).
  bool has_tokenize(const std::string& model);
  // Token count of `text` as a completion prompt (special tokens as the server adds them),
  // or, with `chat`, of the rendered chat (system `prefix` when non-empty, then `text` as
  // the user turn, with the generation prompt).
  StatusOr<int64_t> count_tokens(const std::string& model, const std::string& prefix,
                                 const std::string& text, bool chat);

  // The vocabulary size as seen through /v1/completions: one past the largest token id a
  // one-token prompt (max_tokens 1) is accepted with; a 400 means out of range. Reads the
  // range from sluice's rejection message when it names one (4 requests), else bisects
  // (about 2*log2(vocab) requests).
  StatusOr<int32_t> probe_vocab_size(const std::string& model);

  // Sends one short streamed request shaped like the benchmark's. If the server rejects
  // ignore_eos (a 400 naming it), clears shape->ignore_eos and retries. An error when the
  // request still fails: the benchmark would fail every request.
  Status warm_up(RequestShape* shape, const std::string& path, const BenchPrompt& prompt);

 private:
  SyncHttpClient& client_;
  std::string api_key_;
};

}  // namespace sluice::bench
