// Row-major single-precision matrix product split across ComputeThreads() threads, each
// block computed by single-threaded OpenBLAS (see compute_threads.cc for why). Use this
// rather than calling cblas_sgemm directly from kernels.
#ifndef MOBILENET_MODEL_LAYERS_GEMM_H_
#define MOBILENET_MODEL_LAYERS_GEMM_H_

#include <cstdint>

namespace mobilenet {

enum class MatrixOp { kAsIs, kTransposed };

// c [m, n] = op_a(a) x op_b(b) + beta * c, every matrix contiguous and row-major:
// a is [m, k] ([k, m] when transposed), b is [k, n] ([n, k] when transposed).
// beta == 0 overwrites c (its old contents may be anything, NaN included).
// The work is cut into blocks of rows of c (or of columns when c is wider than tall), one
// per thread; each element of c is computed by exactly one thread with a fixed summation
// order, so results are reproducible run to run for a given thread count. Called from inside an OpenMP parallel region, it runs on the calling
// thread alone.
void Gemm(MatrixOp op_a, MatrixOp op_b, int64_t m, int64_t n, int64_t k, const float* a,
          const float* b, float beta, float* c);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_GEMM_H_
