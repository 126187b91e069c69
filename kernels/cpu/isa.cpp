#include "kernels/cpu/isa.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace sluice::kernels::cpu {
namespace {

struct Features {
  bool avx2 = false;    // AVX2 + FMA + F16C, YMM state enabled by the OS
  bool avx512 = false;  // the above + AVX512F/BW/VL/DQ, ZMM + opmask state enabled
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
};

#if defined(__x86_64__) || defined(__i386__)
uint64_t read_xcr0() {
  uint32_t eax, edx;
  // xgetbv with ecx = 0; written as bytes so this file needs no -mxsave.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

Features probe() {
  Features f;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = ecx & (1u << 12);
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  const bool f16c = ecx & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = ebx & (1u << 5);
  const bool avx512f = ebx & (1u << 16);
  const bool avx512dq = ebx & (1u << 17);
  const bool avx512bw = ebx & (1u << 30);
  const bool avx512vl = ebx & (1u << 31);
  f.avx2 = ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_vnni = f.avx512 && (ecx & (1u << 11));
  unsigned eax1 = 0, ebx1, ecx1, edx1;
  if (f.avx512 && __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1)) {
    f.avx512_bf16 = eax1 & (1u << 5);
  }
  return f;
}
#else
Features probe() { return {}; }
#endif

const Features& features() {
  static const Features f = probe();
  return f;
}

CpuIsa choose_active() {
  const char* env = std::getenv("SLUICE_CPU_ISA");
  if (env == nullptr || *env == '\0') return detected_isa();
  std::optional<CpuIsa> isa = parse_isa(env);
  if (!isa) {
    std::fprintf(stderr, "sluice: SLUICE_CPU_ISA=%s is not one of scalar, avx2, avx512\n", env);
    std::exit(2);
  }
  if (!isa_supported(*isa)) {
    std::fprintf(stderr,
                 "sluice: SLUICE_CPU_ISA=%s but this CPU supports only up to %s; unset it or "
                 "choose a supported ISA\n",
                 env, isa_name(detected_isa()));
    std::exit(2);
  }
  return *isa;
}

}  // namespace

CpuIsa detected_isa() {
  const Features& f = features();
  if (f.avx512) return CpuIsa::kAvx512;
  if (f.avx2) return CpuIsa::kAvx2;
  return CpuIsa::kScalar;
}

CpuIsa active_isa() {
  static const CpuIsa isa = choose_active();
  return isa;
}

bool isa_supported(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return true;
    case CpuIsa::kAvx2:
      return features().avx2;
    case CpuIsa::kAvx512:
      return features().avx512;
  }
  return false;
}

bool avx512_bf16_supported() { return features().avx512_bf16; }

bool avx512_vnni_supported() { return features().avx512_vnni; }

const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
  }
  return "?";
}

std::optional<CpuIsa> parse_isa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (name == isa_name(isa)) return isa;
  }
  return std::nullopt;
}

}  // namespace sluice::kernels::cpu
