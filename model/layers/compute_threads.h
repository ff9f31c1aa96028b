// The number of threads the compute kernels (our own loops and OpenBLAS) use.
#ifndef MOBILENET_MODEL_LAYERS_COMPUTE_THREADS_H_
#define MOBILENET_MODEL_LAYERS_COMPUTE_THREADS_H_

namespace mobilenet {

// Sets the thread count for every kernel in model/layers, OpenBLAS included (OpenBLAS
// itself stays single-threaded; GEMMs are split across the kernels' own OpenMP threads,
// see gemm.h). `threads` >= 1. Call before running kernels; not safe concurrently with
// them. Kernels pass num_threads(ComputeThreads()) to their OpenMP regions, so the count
// applies whichever thread runs them.
void SetComputeThreads(int threads);

// The current thread count (default: 1 until SetComputeThreads is called).
int ComputeThreads();

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_COMPUTE_THREADS_H_
