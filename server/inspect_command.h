#pragma once
// `sluice inspect`: what a model is and what it will cost, without loading it. Reads a
// config.json (or a checkpoint directory's, or a GGUF's metadata), builds the ModelPlan and
// prints the parsed config, the per-layer plan (type, head dim, KV heads, KV sharing, MLP
// width, MoE), the KV groups, the weight bytes (summed from the checkpoint's tensor headers
// when there are weights, else estimated from the config) and the KV bytes per token and at
// the context limit, in bf16 and f32. Tensor data is never read.

#include <CLI/CLI.hpp>
#include <string>

namespace sluice::server {

struct InspectOptions {
  std::string model;      // a checkpoint directory, a config.json, a GGUF file or "default"
  int max_model_len = 0;  // context for the KV figures (0: the model's own)
};

// Adds the subcommand and its flags to `app`; `opts` receives the parsed values.
CLI::App* add_inspect_command(CLI::App& app, InspectOptions& opts);

// Runs it, printing to stdout; returns the process exit code (0 ok, 2 bad input, with one
// line on stderr).
int run_inspect(const InspectOptions& opts);

}  // namespace sluice::server
