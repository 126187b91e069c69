#pragma once
// `sluice generate`: loads a model and generates one continuation on the CPU, streaming
// text to stdout as tokens arrive. A debugging and numerics tool as much as a demo.

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace sluice::server {

struct GenerateOptions {
  std::string model = "default";
  std::string prompt;
  bool chat = false;
  int max_tokens = 64;
  float temperature = 0.0f;  // the CLI decodes greedily unless asked to sample
  int top_k = -1;
  float top_p = 1.0f;
  float min_p = 0.0f;
  std::optional<uint64_t> seed;
  int threads = 0;  // 0: all cores
  int max_model_len = 0;  // 0: the model's own
  std::string prompt_token_ids;
  bool output_token_ids = false;
  std::string dump_logits;
  std::string log_format = "text";
};

// Adds the subcommand and its flags to `app`; `opts` receives the parsed values.
CLI::App* add_generate_command(CLI::App& app, GenerateOptions& opts);

// Runs it; returns the process exit code (0 ok, 1 a runtime error, 2 bad input).
int run_generate(const GenerateOptions& opts);

}  // namespace sluice::server
