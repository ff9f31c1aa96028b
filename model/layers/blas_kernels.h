// Which OpenBLAS kernels this process runs, and a warning when they are far slower than
// the processor allows. OpenBLAS picks its kernels at load time from the CPU's model
// number; a processor newer than the OpenBLAS build (Debian 12 ships 0.3.21) can fall back
// to its pre-AVX "Prescott" kernels, which train this network about 2x slower, silently.
// OPENBLAS_CORETYPE (e.g. Haswell) overrides the choice; it must be set before the process
// starts, so the binaries can only name it.
#ifndef MOBILENET_MODEL_LAYERS_BLAS_KERNELS_H_
#define MOBILENET_MODEL_LAYERS_BLAS_KERNELS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mobilenet {

// The kernel family OpenBLAS chose (openblas_get_corename(), e.g. "Haswell", "Prescott").
std::string BlasCoreName();

// Empty when `core` is a kernel family with AVX2 and FMA (Haswell, Zen, SkylakeX,
// Cooperlake, SapphireRapids) or the processor lacks them (`cpu_has_avx2_fma` false), so
// nothing faster exists; otherwise one line for an operator naming the kernels and the
// variable that fixes it. `core` is compared without regard to case.
std::string SlowBlasKernelWarning(absl::string_view core, bool cpu_has_avx2_fma);

// SlowBlasKernelWarning for this process's kernels and processor.
std::string SlowBlasKernelWarning();

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_BLAS_KERNELS_H_
