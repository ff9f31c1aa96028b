#include "model/layers/compute_threads.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

// Threading scheme. OpenBLAS (pthread build) is kept single-threaded for good and every
// multi-threaded kernel, GEMMs included (see gemm.h; on AVX-512 builds the GEMM kernel is
// our own), splits its own work across OpenMP threads. Measured on this 2-core machine, alternating a GEMM with an OpenMP pass as the
// network does: OpenBLAS's own pool, which busy-waits after each call, fought the OpenMP
// team and made [401408x32]x[32x64] take 38 ms per GEMM+pass against 14 ms with OpenBLAS
// single-threaded and the GEMM split into two OpenMP row blocks (71 vs 141 GFLOP/s on the
// GEMM alone; 29 vs 18 ms and 50 vs 18 ms at the 25088x256x256 and 6272x512x512 shapes).
//
// OpenMP's omp_set_num_threads only changes the calling thread's setting, so kernels
// take their team size from ComputeThreads() (num_threads clause) rather than from the
// OpenMP default; that way the count holds for whichever thread runs the kernels.

namespace mobilenet {
namespace {

std::atomic<int> compute_threads{1};

// Runs at load time: OpenBLAS would otherwise start with one thread per core.
const bool blas_single_threaded = [] {
  openblas_set_num_threads(1);
  return true;
}();

}  // namespace

void SetComputeThreads(int threads) {
  if (threads < 1) {  // Programming error: the contract requires >= 1.
    std::fprintf(stderr, "SetComputeThreads: threads must be >= 1, got %d\n", threads);
    std::abort();
  }
  compute_threads.store(threads, std::memory_order_relaxed);
  omp_set_num_threads(threads);
  openblas_set_num_threads(1);
}

int ComputeThreads() {
  (void)blas_single_threaded;
  return compute_threads.load(std::memory_order_relaxed);
}

}  // namespace mobilenet
