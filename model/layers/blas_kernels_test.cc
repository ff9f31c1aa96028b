#include "model/layers/blas_kernels.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(BlasKernelsTest, PreAvxKernelsOnAnAvx2ProcessorAreNamedWithTheFix) {
  const std::string warning = SlowBlasKernelWarning("Prescott", /*cpu_has_avx2_fma=*/true);
  EXPECT_THAT(warning, HasSubstr("Prescott kernels"));
  EXPECT_THAT(warning, HasSubstr("OPENBLAS_CORETYPE=Haswell"));
  EXPECT_THAT(SlowBlasKernelWarning("Sandybridge", true), HasSubstr("Sandybridge"));
  EXPECT_THAT(SlowBlasKernelWarning("Core2", true), HasSubstr("Core2"));
}

TEST(BlasKernelsTest, Avx2KernelsAreFineWhateverTheirCase) {
  for (const char* core : {"Haswell", "HASWELL", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids",
                           "sapphirerapids"}) {
    EXPECT_EQ(SlowBlasKernelWarning(core, true), "") << core;
  }
}

TEST(BlasKernelsTest, OldProcessorsHaveNothingFasterToSuggest) {
  EXPECT_EQ(SlowBlasKernelWarning("Prescott", /*cpu_has_avx2_fma=*/false), "");
  EXPECT_EQ(SlowBlasKernelWarning("Nehalem", false), "");
}

TEST(BlasKernelsTest, ThisProcessNamesItsKernels) {
  EXPECT_FALSE(BlasCoreName().empty());
  // Whatever this machine is, the warning either is empty or names the kernels it found.
  const std::string warning = SlowBlasKernelWarning();
  if (!warning.empty()) {
    EXPECT_THAT(warning, HasSubstr(BlasCoreName()));
  }
}

}  // namespace
}  // namespace mobilenet
