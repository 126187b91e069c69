// The op tables and ISA selection: every table complete, names right, SLUICE_CPU_ISA
// parsed and refused as documented.

#include <cstdlib>

#include "kernel_test_util.h"

namespace sluice::kernels::testing {
namespace {

TEST(CpuOpsTest, EveryTableIsComplete) {
  EXPECT_EQ(cpu_ops().first_missing(), nullptr);
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!cpu::isa_supported(isa)) continue;
    const OpTable& t = cpu::cpu_ops_for_isa(isa);
    EXPECT_EQ(t.first_missing(), nullptr) << cpu::isa_name(isa);
    EXPECT_EQ(std::string(t.backend), std::string("cpu-") + cpu::isa_name(isa));
    EXPECT_STREQ(cpu::isa_kernels(isa).name, cpu::isa_name(isa));
  }
}

TEST(CpuOpsTest, FirstMissingNamesTheGap) {
  OpTable t = cpu_ops();
  t.attention = nullptr;
  t.scale = nullptr;
  EXPECT_STREQ(t.first_missing(), "attention");
  EXPECT_STREQ(OpTable{}.first_missing(), "embedding");
}

TEST(CpuIsaTest, NamesRoundTripAndDetectionIsConsistent) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    EXPECT_EQ(cpu::parse_isa(cpu::isa_name(isa)), isa);
  }
  EXPECT_FALSE(cpu::parse_isa("AVX2").has_value());
  EXPECT_FALSE(cpu::parse_isa("").has_value());
  EXPECT_TRUE(cpu::isa_supported(CpuIsa::kScalar));
  EXPECT_TRUE(cpu::isa_supported(cpu::detected_isa()));
  if (cpu::isa_supported(CpuIsa::kAvx512)) {
    EXPECT_TRUE(cpu::isa_supported(CpuIsa::kAvx2));
  }
  const char* env = std::getenv("SLUICE_CPU_ISA");
  if (env == nullptr || *env == '\0') {
    EXPECT_EQ(cpu::active_isa(), cpu::detected_isa());
  }
  std::string expected = std::string("cpu-") + cpu::isa_name(cpu::active_isa());
  EXPECT_EQ(cpu_ops().backend, expected);
}

TEST(CpuIsaDeathTest, ForcedIsaIsHonouredOrRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Each death test re-runs this test in a fresh process, so active_isa() is computed anew.
  EXPECT_EXIT(
      {
        setenv("SLUICE_CPU_ISA", "sse9", 1);
        cpu::active_isa();
        std::exit(0);
      },
      ::testing::ExitedWithCode(2), "SLUICE_CPU_ISA=sse9 is not one of scalar, avx2, avx512");
  EXPECT_EXIT(
      {
        setenv("SLUICE_CPU_ISA", "scalar", 1);
        std::exit(cpu::active_isa() == CpuIsa::kScalar &&
                          std::string(cpu_ops().backend) == "cpu-scalar"
                      ? 0
                      : 1);
      },
      ::testing::ExitedWithCode(0), "");
  if (!cpu::isa_supported(CpuIsa::kAvx512)) {
    EXPECT_EXIT(
        {
          setenv("SLUICE_CPU_ISA", "avx512", 1);
          cpu::active_isa();
          std::exit(0);
        },
        ::testing::ExitedWithCode(2), "SLUICE_CPU_ISA=avx512 but this CPU supports only");
  }
}

}  // namespace
}  // namespace sluice::kernels::testing
