#include "model/layers/full_conv.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "model/layers/channel_vector.h"
#include "model/layers/compute_threads.h"

// How the fast kernels are laid out.
//
// Forward and d_filter are direct loops vectorized over output channels: in NHWC the
// K * Cin taps of one filter row are contiguous in the input row, and in HWIO each tap's
// Cout weights are contiguous, so an output pixel is a short dot product of input values
// (broadcast) with weight vectors. Threads take output rows. For each output row the K
// input rows it reads are first copied into a per-thread buffer with the SAME padding
// columns as zeros, so no pixel needs a bounds check. The forward pass keeps a tile of
// output pixels in registers; the d_filter pass keeps a tile of taps, then adds it to a
// per-thread partial filter; the partials are added in thread order at the end.
//
// d_input (not needed by the network's first layer) multiplies d_output by the filter
// transposed into patch gradients, a chunk of rows at a time with single-threaded OpenBLAS
// (see compute_threads.cc), and scatters them back; each image goes to one thread.

namespace mobilenet {
namespace {

using channel_vector::ForEachChannelBlock;
using channel_vector::Load;
using channel_vector::Splat;
using channel_vector::Store;

// Output pixels per forward register tile, and taps per d_filter register tile. Narrower
// tiles (row remainders) split their sums over independent accumulators instead.
constexpr int kPixelTile = 8;
constexpr int kTapTile = 8;

// Floats per thread for the patch-gradient buffer of the d_input pass: 1 MiB.
constexpr int64_t kPatchBudget = int64_t{1} << 18;

void CheckGeometry(const ConvGeometry& g) {
  const ConvGeometry same = ConvGeometry::Same(g.batch, g.in_h, g.in_w, g.in_channels,
                                               g.out_channels, g.kernel, g.stride);
  MOBILENET_CHECK(g.kernel >= 1 && g.stride >= 1);
  MOBILENET_CHECK(g.in_channels >= 1 && g.out_channels >= 1);
  MOBILENET_CHECK(g.batch >= 1 && g.in_h >= 1 && g.in_w >= 1);
  MOBILENET_CHECK(g.out_h == same.out_h && g.out_w == same.out_w && g.pad_top == same.pad_top &&
                  g.pad_left == same.pad_left);
}

// The input rows one output row reads, with the SAME padding columns as zeros: padded
// column pl + ix holds input column ix, so pixel ox's patch starts at padded column
// ox * stride. Rows above or below the image are not stored; ky_begin/ky_end say which
// filter rows fall inside. One per thread, reused from row to row.
class PaddedRows {
 public:
  explicit PaddedRows(const ConvGeometry& g)
      : g_(g),
        width_(std::max((g.out_w - 1) * g.stride + g.kernel, g.pad_left + g.in_w)),
        rows_(static_cast<size_t>(g.kernel) * width_ * g.in_channels, 0.0f) {}

  // Copies the input rows of output row `row` (n * out_h + oy).
  void Fill(const float* input, int64_t row) {
    const int64_t n = row / g_.out_h;
    const int iy0 = static_cast<int>(row % g_.out_h) * g_.stride - g_.pad_top;
    ky_begin_ = std::max(0, -iy0);
    ky_end_ = std::max(ky_begin_, std::min(g_.kernel, g_.in_h - iy0));
    const int64_t in_row = int64_t{g_.in_w} * g_.in_channels;
    for (int ky = ky_begin_; ky < ky_end_; ++ky) {
      const float* src = input + (n * g_.in_h + iy0 + ky) * in_row;
      std::copy(src, src + in_row, padded_row(ky) + int64_t{g_.pad_left} * g_.in_channels);
    }
  }

  int ky_begin() const { return ky_begin_; }
  int ky_end() const { return ky_end_; }
  // Filter row ky's input row, padded; valid for ky in [ky_begin, ky_end).
  const float* row(int ky) const { return rows_.data() + int64_t{ky} * width_ * g_.in_channels; }

 private:
  float* padded_row(int ky) { return rows_.data() + int64_t{ky} * width_ * g_.in_channels; }

  const ConvGeometry& g_;
  const int width_;  // padded columns
  std::vector<float> rows_;
  int ky_begin_ = 0, ky_end_ = 0;
};

// Output pixels [ox, ox + kCount) of one row, output channels [co, co + lanes).
template <class V, int kCount>
inline void ForwardPixels(const ConvGeometry& g, const PaddedRows& rows, const float* filter,
                          float* out_row, int ox, int co) {
  // Independent partial sums over the taps, enough to keep the FMA units busy.
  constexpr int kSplit = kCount >= kPixelTile ? 1 : kPixelTile / kCount;
  const int64_t cin = g.in_channels, cout = g.out_channels;
  const int64_t row_taps = g.kernel * cin;
  const int64_t step = g.stride * cin;  // between the patches of neighbouring pixels
  V acc[kSplit][kCount];
  for (int s = 0; s < kSplit; ++s) {
    for (int p = 0; p < kCount; ++p) acc[s][p] = V{};
  }
  for (int ky = rows.ky_begin(); ky < rows.ky_end(); ++ky) {
    const float* src = rows.row(ky) + ox * step;
    const float* w = filter + ky * row_taps * cout + co;
    int64_t j = 0;
    for (; j + kSplit <= row_taps; j += kSplit) {
#pragma GCC unroll 8
      for (int s = 0; s < kSplit; ++s) {
        const V wv = Load<V>(w + (j + s) * cout);
#pragma GCC unroll 8
        for (int p = 0; p < kCount; ++p) acc[s][p] += Splat<V>(src[p * step + j + s]) * wv;
      }
    }
    for (; j < row_taps; ++j) {
      const V wv = Load<V>(w + j * cout);
      for (int p = 0; p < kCount; ++p) acc[0][p] += Splat<V>(src[p * step + j]) * wv;
    }
  }
  for (int p = 0; p < kCount; ++p) {
    V sum = acc[0][p];
    for (int s = 1; s < kSplit; ++s) sum += acc[s][p];
    Store(out_row + (ox + p) * cout + co, sum);
  }
}

// One output row.
void ForwardRow(const ConvGeometry& g, const PaddedRows& rows, const float* filter,
                float* out_row) {
  ForEachChannelBlock(g.out_channels, [&](auto lanes, int co) {
    using V = decltype(lanes);
    int ox = 0;
    for (; ox + kPixelTile <= g.out_w; ox += kPixelTile) {
      ForwardPixels<V, kPixelTile>(g, rows, filter, out_row, ox, co);
    }
    if (ox + 4 <= g.out_w) {
      ForwardPixels<V, 4>(g, rows, filter, out_row, ox, co);
      ox += 4;
    }
    if (ox + 2 <= g.out_w) {
      ForwardPixels<V, 2>(g, rows, filter, out_row, ox, co);
      ox += 2;
    }
    if (ox < g.out_w) ForwardPixels<V, 1>(g, rows, filter, out_row, ox, co);
  });
}

// Adds to d_filter the gradient of taps [j, j + kTaps) of filter row ky (tap j is
// (kx, ci) = (j / Cin, j % Cin)), output channels [co, co + lanes), over the row's pixels.
// d_out_row: the row's d_output.
template <class V, int kTaps>
inline void FilterGradTaps(const ConvGeometry& g, const PaddedRows& rows, int ky,
                           const float* d_out_row, int64_t j, int co, float* d_filter) {
  // Independent accumulator sets over neighbouring pixels when the tap tile is narrow.
  constexpr int kSplit = kTaps >= kTapTile ? 1 : kTapTile / kTaps;
  const int64_t cin = g.in_channels, cout = g.out_channels;
  const int64_t step = g.stride * cin;
  const float* src = rows.row(ky) + j;
  const float* d_out = d_out_row + co;
  V acc[kSplit][kTaps];
  for (int s = 0; s < kSplit; ++s) {
    for (int t = 0; t < kTaps; ++t) acc[s][t] = V{};
  }
  int ox = 0;
  for (; ox + kSplit <= g.out_w; ox += kSplit) {
#pragma GCC unroll 8
    for (int s = 0; s < kSplit; ++s) {
      const V d = Load<V>(d_out + (ox + s) * cout);
      const float* x = src + (ox + s) * step;
#pragma GCC unroll 16
      for (int t = 0; t < kTaps; ++t) acc[s][t] += Splat<V>(x[t]) * d;
    }
  }
  for (; ox < g.out_w; ++ox) {
    const V d = Load<V>(d_out + ox * cout);
    const float* x = src + ox * step;
    for (int t = 0; t < kTaps; ++t) acc[0][t] += Splat<V>(x[t]) * d;
  }
  float* slab = d_filter + (ky * g.kernel * cin + j) * cout + co;
  for (int t = 0; t < kTaps; ++t) {
    V sum = acc[0][t];
    for (int s = 1; s < kSplit; ++s) sum += acc[s][t];
    Store(slab + t * cout, Load<V>(slab + t * cout) + sum);
  }
}

// One output row's share of d_filter.
void FilterGradRow(const ConvGeometry& g, const PaddedRows& rows, const float* d_out_row,
                   float* d_filter) {
  const int64_t row_taps = int64_t{g.kernel} * g.in_channels;
  ForEachChannelBlock(g.out_channels, [&](auto lanes, int co) {
    using V = decltype(lanes);
    for (int ky = rows.ky_begin(); ky < rows.ky_end(); ++ky) {
      int64_t j = 0;
      for (; j + kTapTile <= row_taps; j += kTapTile) {
        FilterGradTaps<V, kTapTile>(g, rows, ky, d_out_row, j, co, d_filter);
      }
      for (; j + 2 <= row_taps; j += 2) {
        FilterGradTaps<V, 2>(g, rows, ky, d_out_row, j, co, d_filter);
      }
      for (; j < row_taps; ++j) FilterGradTaps<V, 1>(g, rows, ky, d_out_row, j, co, d_filter);
    }
  });
}

// Adds the patch gradients of output rows [row_begin, row_end) (flattened n * out_h + oy;
// [pixels, K * K * Cin] in filter order) onto d_input. The rows must be the caller's
// alone: neighbouring rows share input rows.
void Col2ImAdd(const ConvGeometry& g, const float* d_patches, int64_t row_begin, int64_t row_end,
               float* d_input) {
  const int k = g.kernel;
  const int64_t ch = g.in_channels;
  const int64_t patch = int64_t{k} * k * ch;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / g.out_h;
    const int oy = static_cast<int>(row % g.out_h);
    for (int ox = 0; ox < g.out_w; ++ox) {
      const float* src = d_patches + ((row - row_begin) * g.out_w + ox) * patch;
      const int ix0 = ox * g.stride - g.pad_left;
      const int kx_begin = std::max(0, -ix0);
      const int kx_end = std::min(k, g.in_w - ix0);
      for (int ky = 0; ky < k; ++ky, src += k * ch) {
        const int iy = oy * g.stride - g.pad_top + ky;
        if (iy < 0 || iy >= g.in_h || kx_begin >= kx_end) continue;
        float* dst = d_input + ((n * g.in_h + iy) * g.in_w + ix0 + kx_begin) * ch;
        const float* from = src + kx_begin * ch;
        for (int64_t i = 0; i < (kx_end - kx_begin) * ch; ++i) dst[i] += from[i];
      }
    }
  }
}

// d_input of image n (overwritten).
void InputGradImage(const ConvGeometry& g, const float* filter, const float* d_output, int n,
                    std::vector<float>& d_patches, float* d_input) {
  const int64_t patch = int64_t{g.kernel} * g.kernel * g.in_channels;
  const int64_t image_in = int64_t{g.in_h} * g.in_w * g.in_channels;
  const int64_t chunk = std::max<int64_t>(1, kPatchBudget / (int64_t{g.out_w} * patch));
  std::fill(d_input + n * image_in, d_input + (n + 1) * image_in, 0.0f);
  const int64_t image_end = (n + 1) * int64_t{g.out_h};
  for (int64_t begin = n * int64_t{g.out_h}; begin < image_end; begin += chunk) {
    const int64_t end = std::min(image_end, begin + chunk);
    const int64_t pixels = (end - begin) * g.out_w;
    d_patches.resize(std::max<size_t>(d_patches.size(), pixels * patch));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, pixels, patch, g.out_channels, 1.0f,
                d_output + begin * g.out_w * g.out_channels, g.out_channels, filter, g.out_channels,
                0.0f, d_patches.data(), patch);
    Col2ImAdd(g, d_patches.data(), begin, end, d_input);
  }
}

}  // namespace

void FullConvForward(const ConvGeometry& g, const float* input, const float* filter,
                     float* output) {
  CheckGeometry(g);
  const int64_t rows = int64_t{g.batch} * g.out_h;
  const int64_t out_row = int64_t{g.out_w} * g.out_channels;

#pragma omp parallel num_threads(ComputeThreads())
  {
    PaddedRows padded(g);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      padded.Fill(input, row);
      ForwardRow(g, padded, filter, output + row * out_row);
    }
  }
}

void FullConvBackward(const ConvGeometry& g, const float* input, const float* filter,
                      const float* d_output, float* d_input, float* d_filter) {
  CheckGeometry(g);
  const int64_t filter_size = int64_t{g.kernel} * g.kernel * g.in_channels * g.out_channels;
  const int64_t rows = int64_t{g.batch} * g.out_h;
  const int64_t out_row = int64_t{g.out_w} * g.out_channels;
  const int threads = ComputeThreads();
  // A cache line of padding between the partial filters, which different threads write.
  const int64_t partial_stride = (filter_size + 31) / 16 * 16;
  std::vector<float> partials(static_cast<size_t>(threads * partial_stride), 0.0f);

#pragma omp parallel num_threads(threads)
  {
    float* my_d_filter = partials.data() + omp_get_thread_num() * partial_stride;
    PaddedRows padded(g);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      padded.Fill(input, row);
      FilterGradRow(g, padded, d_output + row * out_row, my_d_filter);
    }
    if (d_input != nullptr) {
      std::vector<float> d_patches;
#pragma omp for schedule(static)
      for (int n = 0; n < g.batch; ++n) {
        InputGradImage(g, filter, d_output, n, d_patches, d_input);
      }
    }
  }
  for (int t = 0; t < threads; ++t) {
    const float* partial = partials.data() + t * partial_stride;
    for (int64_t i = 0; i < filter_size; ++i) d_filter[i] += partial[i];
  }
}

void FullConvForwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                          float* output) {
  const int k = g.kernel;
  const int cin = g.in_channels, cout = g.out_channels;
  std::vector<double> sum(cout);
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox) {
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int ky = 0; ky < k; ++ky) {
          for (int kx = 0; kx < k; ++kx) {
            const int iy = oy * g.stride - g.pad_top + ky;
            const int ix = ox * g.stride - g.pad_left + kx;
            if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
            for (int ci = 0; ci < cin; ++ci) {
              const double x = input[((int64_t{n} * g.in_h + iy) * g.in_w + ix) * cin + ci];
              const float* w = filter + ((int64_t{ky} * k + kx) * cin + ci) * cout;
              for (int co = 0; co < cout; ++co) sum[co] += x * w[co];
            }
          }
        }
        float* out = output + ((int64_t{n} * g.out_h + oy) * g.out_w + ox) * cout;
        for (int co = 0; co < cout; ++co) out[co] = static_cast<float>(sum[co]);
      }
    }
  }
}

void FullConvBackwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                           const float* d_output, float* d_input, float* d_filter) {
  const int k = g.kernel;
  const int cin = g.in_channels, cout = g.out_channels;
  std::vector<double> d_in(d_input != nullptr ? g.input_size() : 0, 0.0);
  std::vector<double> d_f(int64_t{k} * k * cin * cout, 0.0);
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox) {
        const float* d_out = d_output + ((int64_t{n} * g.out_h + oy) * g.out_w + ox) * cout;
        for (int ky = 0; ky < k; ++ky) {
          for (int kx = 0; kx < k; ++kx) {
            const int iy = oy * g.stride - g.pad_top + ky;
            const int ix = ox * g.stride - g.pad_left + kx;
            if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
            for (int ci = 0; ci < cin; ++ci) {
              const int64_t at = ((int64_t{n} * g.in_h + iy) * g.in_w + ix) * cin + ci;
              const int64_t tap = ((int64_t{ky} * k + kx) * cin + ci) * cout;
              double d_x = 0;
              for (int co = 0; co < cout; ++co) {
                d_f[tap + co] += double{d_out[co]} * input[at];
                d_x += double{d_out[co]} * filter[tap + co];
              }
              if (d_input != nullptr) d_in[at] += d_x;
            }
          }
        }
      }
    }
  }
  for (size_t i = 0; i < d_f.size(); ++i) d_filter[i] += static_cast<float>(d_f[i]);
  for (size_t i = 0; i < d_in.size(); ++i) d_input[i] = static_cast<float>(d_in[i]);
}

}  // namespace mobilenet
