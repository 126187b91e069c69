// Gemma 4 26B-A4B's MoE layer (kernels/cuda/moe.h): moe_route + moe_experts at the real
// shapes (H 2816, E 128, top-8, I 704) for T tokens, against the device's measured copy
// bandwidth. At small T the layer reads the active experts' weights and little else, so
// the figure of merit is those bytes over the time, as a fraction of the copy bandwidth.
//
// Each timed replay is a CUDA graph of kLayers layers, each with its own copy of the
// expert weights (1.5 GB per layer) and its own router logits, so no layer finds its
// weights in L2 and the launch gaps are those a captured decode step would have.
//
//   gpu_moe_bench [--quick] [--json PATH]     (--quick: T = 1, 16, 256)

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/random_fill.h"

namespace sluice::bench {
namespace {

constexpr int64_t kH = 2816, kI = 704, kE = 128;
constexpr int kK = 8;
constexpr int kLayers = 4;
constexpr int64_t kExpertBytes = (2 * kI * kH + kH * kI) * 2;  // gate_up + down, bf16

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using namespace sluice::bench;
  const Session session(argc, argv);
  const char* pdl = std::getenv("SLUICE_PDL");
  std::printf("programmatic dependent launch: %s\n",
              pdl != nullptr && pdl[0] == '0' ? "off (SLUICE_PDL=0)" : "on where sm_90+");
  const int reps = session.args.quick ? 10 : 30;

  const double copy_bw =
      measure_copy_gbps(size_t{1} << 30, session.stream, session.args.quick ? 5 : 15);
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copy_bw);

  const std::vector<int64_t> token_counts =
      session.args.quick ? std::vector<int64_t>{1, 16, 256}
                         : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256};
  const int64_t max_t = token_counts.back();

  // kLayers copies of the expert weights, each from its own seed.
  std::vector<DeviceBuffer> gate_up_mem, down_mem;
  std::vector<Tensor> gate_up, down;
  for (int l = 0; l < kLayers; ++l) {
    gate_up_mem.emplace_back(kE * 2 * kI * kH * 2);
    down_mem.emplace_back(kE * kH * kI * 2);
    gate_up.push_back(gate_up_mem.back().view(DType::kBF16, {kE, 2 * kI, kH}));
    down.push_back(down_mem.back().view(DType::kBF16, {kE, kH, kI}));
    kc::fill_uniform(gate_up.back(), 100 + l, -0.05f, 0.05f, session.stream);
    kc::fill_uniform(down.back(), 200 + l, -0.09f, 0.09f, session.stream);
  }
  DeviceBuffer scale_mem(kE * 4);
  const Tensor scale = scale_mem.view(DType::kF32, {kE});
  kc::fill_uniform(scale, 7, 0.5f, 1.5f, session.stream);

  const size_t ws_bytes = kc::moe_workspace_bytes(max_t, kH, kI, kE, kK);
  DeviceBuffer ws_mem(ws_bytes), x_mem(max_t * kH * 2), out_mem(max_t * kH * 2);
  DeviceBuffer logits_mem(kLayers * max_t * kE * 4);
  DeviceBuffer experts_mem(kLayers * max_t * kK * 4), weights_mem(kLayers * max_t * kK * 4);

  Report report("moe (Gemma 4 26B-A4B: H 2816, E 128, top-8, I 704)");
  for (const int64_t T : token_counts) {
    const Tensor x = x_mem.view(DType::kBF16, {T, kH});
    const Tensor out = out_mem.view(DType::kBF16, {T, kH});
    const Tensor ws = ws_mem.view(
        DType::kBF16, {static_cast<int64_t>((kc::moe_workspace_bytes(T, kH, kI, kE, kK) + 1) / 2)});
    kc::fill_uniform(x, 11 + T, -1.0f, 1.0f, session.stream);
    std::vector<kc::MoeRouteArgs> route(kLayers);
    std::vector<kc::MoeExpertsArgs> experts(kLayers);
    for (int l = 0; l < kLayers; ++l) {
      auto* logits_p = static_cast<float*>(logits_mem.data()) + l * max_t * kE;
      auto* experts_p = static_cast<int32_t*>(experts_mem.data()) + l * max_t * kK;
      auto* weights_p = static_cast<float*>(weights_mem.data()) + l * max_t * kK;
      route[l].logits = Tensor::make(logits_p, DType::kF32, {T, kE}, Device::kCuda);
      route[l].per_expert_scale = scale;
      route[l].out_experts = Tensor::make(experts_p, DType::kI32, {T, kK}, Device::kCuda);
      route[l].out_weights = Tensor::make(weights_p, DType::kF32, {T, kK}, Device::kCuda);
      route[l].top_k = kK;
      kc::fill_uniform(route[l].logits, 1000 * T + l, -4.0f, 4.0f, session.stream);
      experts[l] = {out, x, route[l].out_experts, route[l].out_weights, gate_up[l], down[l], ws};
    }

    // Distinct experts per layer, from one routing pass.
    for (int l = 0; l < kLayers; ++l) kc::moe_route(route[l], session.stream);
    SLUICE_CUDA_CHECK(cudaStreamSynchronize(session.stream));
    double distinct = 0.0;
    for (int l = 0; l < kLayers; ++l) {
      std::vector<int32_t> ids(T * kK);
      SLUICE_CUDA_CHECK(cudaMemcpy(ids.data(), route[l].out_experts.data, ids.size() * 4,
                                   cudaMemcpyDeviceToHost));
      distinct += static_cast<double>(std::set<int32_t>(ids.begin(), ids.end()).size());
    }
    distinct /= kLayers;

    auto layers = [&](bool with_route) {
      return [&, with_route](cudaStream_t s) {
        for (int l = 0; l < kLayers; ++l) {
          if (with_route) kc::moe_route(route[l], s);
          kc::moe_experts(experts[l], s);
        }
      };
    };
    const double ms_total = graph_median_ms(layers(true), session.stream, 3, reps) / kLayers;
    const double ms_experts = graph_median_ms(layers(false), session.stream, 3, reps) / kLayers;
    const double ms_stream = median_ms(layers(true), session.stream, 3, reps) / kLayers;

    const double bytes = distinct * static_cast<double>(kExpertBytes);
    const double flops = 2.0 * static_cast<double>(T * kK) * (3.0 * kI * kH);
    const double gbs_total = bytes / (ms_total * 1e-3) / 1e9;
    const double gbs_experts = bytes / (ms_experts * 1e-3) / 1e9;
    report.add({"moe_route+experts",
                {{"T", static_cast<double>(T)}},
                {{"ms", ms_total},
                 {"ms_experts", ms_experts},
                 {"ms_no_graph", ms_stream},
                 {"experts_touched", distinct},
                 {"weight_mb", bytes / 1e6},
                 {"gb_per_s", gbs_total},
                 {"frac_copy_bw", gbs_total / copy_bw},
                 {"frac_copy_bw_experts", gbs_experts / copy_bw},
                 {"roofline_ms", bytes / (copy_bw * 1e9) * 1e3},
                 {"tflop_per_s", flops / (ms_total * 1e-3) / 1e12}}});
  }
  report.add({"d2d_copy", {}, {{"gb_per_s", copy_bw}}});
  return session.finish(report);
}
