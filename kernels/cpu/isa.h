#pragma once
// Which SIMD instruction set the CPU backend uses. Each SIMD kernel is compiled three times
// (plain C++, AVX2 and AVX-512 translation units, see kernels/CMakeLists.txt) and one set
// is chosen at run time from what the CPU and OS support. No -march=native anywhere.
//
// SLUICE_CPU_ISA=scalar|avx2|avx512 in the environment forces a choice (for tests and
// comparisons). An unknown name, or an ISA this CPU cannot run, is refused at first use with
// a one-line message on stderr and exit status 2: silently running another path would make
// a comparison meaningless.

#include <optional>
#include <string_view>

namespace sluice::kernels::cpu {

enum class CpuIsa { kScalar, kAvx2, kAvx512 };

// kAvx2 needs AVX2 + FMA + F16C with OS support for YMM state. kAvx512 additionally needs
// AVX512F/BW/VL/DQ with OS support for ZMM and opmask state. (The dense AVX-512 kernels use
// no BF16 or VNNI instructions; see avx512_bf16_supported() for an opt-in path. The
// quantized matmul adds a VNNI variant, chosen by avx512_vnni_supported().)
CpuIsa detected_isa();

// SLUICE_CPU_ISA when set (validated as above), else detected_isa(). Computed once.
CpuIsa active_isa();

// Whether this CPU can run the kernels of `isa` (kScalar always can).
bool isa_supported(CpuIsa isa);

// AVX512_BF16 (vdpbf16ps) on top of kAvx512 support.
bool avx512_bf16_supported();

// AVX512_VNNI (vpdpbusd, also on 256-bit vectors) on top of kAvx512 support: the quantized
// matmul's integer dot products (quant_matmul.h).
bool avx512_vnni_supported();

// "scalar", "avx2", "avx512".
const char* isa_name(CpuIsa isa);

// The ISA named `name` (as isa_name spells it), or nullopt.
std::optional<CpuIsa> parse_isa(std::string_view name);

}  // namespace sluice::kernels::cpu
