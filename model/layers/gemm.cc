#include "model/layers/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/layers/compute_threads.h"

#include <cblas.h>

// OpenBLAS does the matrix work; this file only cuts it into one block per OpenMP thread,
// each computed by single-threaded OpenBLAS (see compute_threads.cc for why OpenBLAS's own
// thread pool is not used).

namespace mobilenet {
namespace {

// Below this many multiply-adds a single thread beats waking a second one.
constexpr int64_t kMinParallelMacs = int64_t{1} << 20;
// Thread blocks of c start at multiples of this (one kernel panel).
constexpr int64_t kBlockAlign = 32;


void BlockGemm(MatrixOp op_a, MatrixOp op_b, int64_t m, int64_t n, int64_t k, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, op_a == MatrixOp::kTransposed ? CblasTrans : CblasNoTrans,
              op_b == MatrixOp::kTransposed ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda,
              b, ldb, beta, c, ldc);
}


// [begin, end) of part `part` of `parts` of [0, size), inner edges rounded to kBlockAlign.
void BlockRange(int64_t size, int part, int parts, int64_t* begin, int64_t* end) {
  const auto edge = [&](int p) {
    if (p >= parts) return size;
    const int64_t raw = size * p / parts;
    return std::min(size, (raw + kBlockAlign / 2) / kBlockAlign * kBlockAlign);
  };
  *begin = edge(part);
  *end = edge(part + 1);
}

}  // namespace

void Gemm(MatrixOp op_a, MatrixOp op_b, int64_t m, int64_t n, int64_t k, const float* a,
          const float* b, float beta, float* c) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // An empty sum: c = beta * c (0 when beta == 0, whatever c held).
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == 0 ? 0.0f : beta * c[i];
    return;
  }
  const int64_t lda = op_a == MatrixOp::kTransposed ? m : k;
  const int64_t ldb = op_b == MatrixOp::kTransposed ? k : n;
  const bool split_rows = m >= n;
  const int64_t split_size = split_rows ? m : n;
  const int threads = static_cast<int>(
      std::min<int64_t>(ComputeThreads(), std::max<int64_t>(1, split_size / kBlockAlign)));
  if (threads == 1 || m * n * k < kMinParallelMacs || omp_in_parallel()) {
    BlockGemm(op_a, op_b, m, n, k, a, lda, b, ldb, beta, c, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t begin, end;
    BlockRange(split_size, omp_get_thread_num(), omp_get_num_threads(), &begin, &end);
    if (end > begin) {
      if (split_rows) {
        const float* a_block = op_a == MatrixOp::kTransposed ? a + begin : a + begin * k;
        BlockGemm(op_a, op_b, end - begin, n, k, a_block, lda, b, ldb, beta, c + begin * n, n);
      } else {
        const float* b_block = op_b == MatrixOp::kTransposed ? b + begin * k : b + begin;
        BlockGemm(op_a, op_b, m, end - begin, k, a, lda, b_block, ldb, beta, c + begin, n);
      }
    }
  }
}

}  // namespace mobilenet
