// sluice-model-bench: CPU prefill and batch-1 decode throughput of one model, through the
// same loader and forward pass `sluice generate` uses. Prints one JSON object.
//
//   sluice-model-bench --model PATH [--threads N] [--prompt-tokens 512] [--decode-tokens 128]
//                      [--repeats 3]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/models/loader.h"
#include "engine/sampling/sampler.h"
#include "kernels/cpu/thread_pool.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int prompt_tokens = 512, decode_tokens = 128, repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string v = argv[i + 1];
    if (k == "--model") model_path = v;
    else if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--prompt-tokens") prompt_tokens = std::atoi(v.c_str());
    else if (k == "--decode-tokens") decode_tokens = std::atoi(v.c_str());
    else if (k == "--repeats") repeats = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (model_path.empty() || threads < 1 || prompt_tokens < 1 || decode_tokens < 1 || repeats < 1) {
    std::fprintf(stderr, "usage: sluice-model-bench --model PATH [--threads N] [--prompt-tokens N] "
                         "[--decode-tokens N] [--repeats N]\n");
    return 2;
  }
  sluice::kernels::cpu::set_num_threads(threads);
  auto t_load = std::chrono::steady_clock::now();
  auto loaded = sluice::models::load_model(model_path, {}, sluice::kernels::cpu_ops());
  if (!loaded.is_ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
    return 1;
  }
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  sluice::models::Model& model = *loaded->model;
  const auto& cfg = model.config();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> dist(1000, std::min(cfg.vocab_size, 200000) - 1);
  std::vector<int32_t> prompt(prompt_tokens);
  prompt[0] = cfg.bos_token_id;
  for (int i = 1; i < prompt_tokens; ++i) prompt[i] = dist(rng);

  std::vector<double> prefill_tps, decode_tps;
  std::vector<float> logits(cfg.vocab_size);
  for (int r = 0; r < repeats; ++r) {
    sluice::models::SequenceKv kv(cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto s = kv.forward(model, prompt, 1, logits);
    auto t1 = std::chrono::steady_clock::now();
    if (!s.is_ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 1;
    }
    prefill_tps.push_back(prompt_tokens / std::chrono::duration<double>(t1 - t0).count());
    int32_t next = sluice::sampling::argmax(logits);
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < decode_tokens; ++i) {
      s = kv.forward(model, std::span<const int32_t>(&next, 1), 1, logits);
      if (!s.is_ok()) {
        std::fprintf(stderr, "%s\n", s.message().c_str());
        return 1;
      }
      next = sluice::sampling::argmax(logits);
    }
    auto t3 = std::chrono::steady_clock::now();
    decode_tps.push_back(decode_tokens / std::chrono::duration<double>(t3 - t2).count());
  }
  std::printf("%s\n", fmt::format("{{\"engine\": \"sluice\", \"model\": \"{}\", \"threads\": {}, "
                                  "\"prompt_tokens\": {}, \"decode_tokens\": {}, \"repeats\": {}, "
                                  "\"load_s\": {:.2f}, \"prefill_tok_s\": {:.2f}, \"decode_tok_s\": {:.2f}}}",
                                  loaded->name, threads, prompt_tokens, decode_tokens, repeats, load_s,
                                  median(prefill_tps), median(decode_tps))
                          .c_str());
  return 0;
}
