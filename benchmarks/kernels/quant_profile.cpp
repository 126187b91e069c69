// sluice-quant-profile: where the weight matmuls of one decode step go, per projection, on
// a real GGUF: every Linear of every layer and the tied head, in forward order (so each
// matrix comes from memory as it would in a step, not from a warm cache), once with the
// quantized kernels (kernels/cpu/quant_matmul.h) on the blocks in the mapped file and once
// with the f32 matmul on dequantized copies (the reference path). Batch of M tokens.
//
//   sluice-quant-profile --model PATH [--threads N] [--tokens M] [--steps S] [--no-f32]
//
// Prints one line per projection: type, MB, ms per step (median of S steps), GB/s, share.

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/weights/weight_source.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace {

using namespace sluice;
using kernels::cpu::QuantType;

std::optional<QuantType> quant_type(weights::SourceDType t) {
  switch (t) {
    case weights::SourceDType::kQ4_0: return QuantType::kQ4_0;
    case weights::SourceDType::kQ4_1: return QuantType::kQ4_1;
    case weights::SourceDType::kQ5_0: return QuantType::kQ5_0;
    case weights::SourceDType::kQ5_1: return QuantType::kQ5_1;
    case weights::SourceDType::kQ8_0: return QuantType::kQ8_0;
    case weights::SourceDType::kQ4_K: return QuantType::kQ4_K;
    case weights::SourceDType::kQ5_K: return QuantType::kQ5_K;
    case weights::SourceDType::kQ6_K: return QuantType::kQ6_K;
    default: return std::nullopt;
  }
}

struct Proj {
  std::string role;  // "attn_q", ..., "head"
  const weights::WeightInfo* info;
  kernels::cpu::QuantMatrix q;
  weights::OwnedTensor f32;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  int threads = 0, M = 1, steps = 5;
  bool with_f32 = true;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (k == "--model") path = next();
    else if (k == "--threads") threads = std::atoi(next().c_str());
    else if (k == "--tokens") M = std::atoi(next().c_str());
    else if (k == "--steps") steps = std::atoi(next().c_str());
    else if (k == "--no-f32") with_f32 = false;
    else {
      std::fprintf(stderr, "usage: sluice-quant-profile --model PATH [--threads N] [--tokens M] [--steps S] [--no-f32]\n");
      return 2;
    }
  }
  if (path.empty() || M < 1 || steps < 1) {
    std::fprintf(stderr, "usage: sluice-quant-profile --model PATH [--threads N] [--tokens M] [--steps S] [--no-f32]\n");
    return 2;
  }
  kernels::cpu::set_num_threads(threads);
  auto src = weights::WeightSource::open_gguf(path);
  if (!src.is_ok()) {
    std::fprintf(stderr, "%s\n", src.status().to_string().c_str());
    return 1;
  }
  const char* roles[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  std::vector<Proj> projs;
  auto add = [&](const std::string& role, const std::string& name) {
    const weights::WeightInfo* info = (*src)->find(name);
    if (info == nullptr || info->shape.size() != 2) return;
    auto qt = quant_type(info->dtype);
    if (!qt) return;
    Proj p{role, info, {info->data, *qt, info->shape[0], info->shape[1], kernels::cpu::quant_row_bytes(*qt, info->shape[1])}, {}};
    if (with_f32) {
      auto f = weights::load_as_f32(*info);
      if (!f.is_ok()) {
        std::fprintf(stderr, "%s\n", f.status().to_string().c_str());
        std::exit(1);
      }
      p.f32 = std::move(*f);
    }
    projs.push_back(std::move(p));
  };
  for (int layer = 0;; ++layer) {
    if ((*src)->find(fmt::format("blk.{}.attn_q.weight", layer)) == nullptr) break;
    for (const char* r : roles) add(r, fmt::format("blk.{}.{}.weight", layer, r));
  }
  add("head", (*src)->find("output.weight") ? "output.weight" : "token_embd.weight");
  int64_t max_k = 0, max_n = 0;
  for (const Proj& p : projs) {
    max_k = std::max(max_k, p.q.cols);
    max_n = std::max(max_n, p.q.rows);
  }
  std::vector<float> a(M * max_k), out(M * max_n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7919) % 2000) / 1000.0f - 1.0f;

  for (int pass = 0; pass < (with_f32 ? 2 : 1); ++pass) {
    const bool quant = pass == 0;
    std::map<std::string, std::vector<double>> per_role;  // ms per step
    std::map<std::string, double> bytes;
    std::map<std::string, std::string> types;
    std::vector<double> totals;
    for (int s = 0; s <= steps; ++s) {  // step 0 warms up
      std::map<std::string, double> t_step;
      double total = 0;
      for (const Proj& p : projs) {
        const auto t0 = std::chrono::steady_clock::now();
        if (quant) {
          kernels::cpu::quant_matmul(kernels::cpu::quant_kernels(), a.data(), p.q.cols, M, p.q, out.data(), p.q.rows);
        } else {
          kernels::MatmulArgs args;
          args.a = kernels::Tensor::make(a.data(), kernels::DType::kF32, {M, p.q.cols});
          args.w = p.f32.tensor;
          args.out = kernels::Tensor::make(out.data(), kernels::DType::kF32, {M, p.q.rows});
          kernels::cpu_ops().matmul(args);
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        t_step[p.role] += ms;
        total += ms;
        if (s == 0) {
          bytes[p.role] += quant ? static_cast<double>(p.info->nbytes) : static_cast<double>(p.f32.tensor.nbytes());
          std::string& ty = types[p.role];
          const std::string name = weights::source_dtype_name(p.info->dtype);
          if (ty.find(name) == std::string::npos) ty += (ty.empty() ? "" : "+") + name;
        }
      }
      if (s == 0) continue;
      for (auto& [role, ms] : t_step) per_role[role].push_back(ms);
      totals.push_back(total);
    }
    const double total = median(totals);
    std::printf("%s weights, %d token(s), %d thread(s): %.2f ms per step of weight matmuls\n",
                quant ? "quantized" : "f32 (dequantized)", M, kernels::cpu::num_threads(), total);
    std::printf("  %-12s %-12s %9s %9s %8s %6s\n", "projection", "stored", "MB", "ms", "GB/s", "share");
    for (auto& [role, v] : per_role) {
      const double ms = median(v);
      std::printf("  %-12s %-12s %9.1f %9.3f %8.2f %5.1f%%\n", role.c_str(), types[role].c_str(),
                  bytes[role] / 1e6, ms, bytes[role] / 1e6 / ms, 100.0 * ms / total);
    }
  }
  return 0;
}
