#include "model/layers/blas_kernels.h"

#include <cblas.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mobilenet {

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "unknown";
}

std::string SlowBlasKernelWarning(absl::string_view core, bool cpu_has_avx2_fma) {
  if (!cpu_has_avx2_fma) return "";
  const std::string lower = absl::AsciiStrToLower(core);
  for (const char* fast : {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"}) {
    if (lower == fast) return "";
  }
  return absl::StrCat("OpenBLAS runs its ", core,
                      " kernels on a processor with AVX2 and FMA (it did not recognize the "
                      "processor), which makes training about 2x slower; start the process "
                      "with OPENBLAS_CORETYPE=Haswell in its environment");
}

std::string SlowBlasKernelWarning() {
  __builtin_cpu_init();
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return SlowBlasKernelWarning(BlasCoreName(), avx2_fma);
}

}  // namespace mobilenet
