#include "model/layers/depthwise_conv.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/check.h"
#include "model/layers/channel_vector.h"
#include "model/layers/compute_threads.h"

// How the fast kernels are laid out.
//
// Threads take whole rows (of the output in the forward pass, of the input in the
// backward pass). Within a row the channels are cut into blocks of one vector register
// (16 floats with AVX-512, 8 with AVX2, then single channels for a remainder); for each
// block the nine taps stay in registers while the kernel walks the row in tiles of a few
// columns, so each input vector loaded serves every output of the tile it touches. Rows
// above and below the image read a row of zeros, so only the first and last columns of a
// row need bounds checks.
//
// The backward pass makes one sweep over the input rows. Input row iy gathers the
// d_output rows its taps feed (three for stride 1; by parity one or two for stride 2), and
// each tile of input columns yields both its d_input (written exactly once, no zeroing
// pass) and its share of d_filter. d_filter sums stay in registers along the row, then go
// into a per-thread partial filter; the partials are added in thread order at the end,
// so results do not depend on scheduling.

namespace mobilenet {
namespace {

using channel_vector::ForEachChannelBlock;
using channel_vector::Load;
using channel_vector::Store;

// Columns per register tile: output columns in the forward pass, input columns (stride
// 1) or output columns (stride 2, two input columns each) in the backward pass. Measured
// on AVX-512; the stride-2 tiles read more than twice the inputs, so they are narrower.
template <int kStride>
constexpr int kTile = kStride == 1 ? 4 : 2;

// Which of the columns a tile reads (input columns in the forward pass, d_output columns in
// the backward pass) lie outside the row: none, just the first (the left edge), just the
// last (the right edge), or any (checked one by one).
enum class Edge { kNone, kLeft, kRight, kChecked };

void CheckGeometry(const ConvGeometry& g) {
  const ConvGeometry same = ConvGeometry::Same(g.batch, g.in_h, g.in_w, g.in_channels,
                                               g.out_channels, g.kernel, g.stride);
  MOBILENET_CHECK(g.kernel == 3 && (g.stride == 1 || g.stride == 2));
  MOBILENET_CHECK(g.in_channels == g.out_channels && g.in_channels >= 1);
  MOBILENET_CHECK(g.batch >= 1 && g.in_h >= 1 && g.in_w >= 1);
  MOBILENET_CHECK(g.out_h == same.out_h && g.out_w == same.out_w && g.pad_top == same.pad_top &&
                  g.pad_left == same.pad_left);
}

// ---------------------------------------------------------------------------------------
// Forward.

// One output row and what it reads. Pointers are to column 0, channel 0.
struct ForwardRow {
  const float* in[3];  // input row under filter row ky, or zeros
  const float* filter;
  float* out;
  int channels, in_w, pad_left;
};

// Output columns [ox, ox + kCount), channels [c, c + lanes), taps f.
template <class V, int kStride, int kCount, Edge kEdge>
inline void ForwardColumns(const ForwardRow& r, const V (&f)[9], int ox, int c) {
  constexpr int kSpan = kStride * (kCount - 1) + 3;  // input columns the outputs read
  const int64_t ch = r.channels;
  const int ix0 = kStride * ox - r.pad_left;
  V acc[kCount];
  for (int t = 0; t < kCount; ++t) acc[t] = V{};
  for (int ky = 0; ky < 3; ++ky) {
    const float* in = r.in[ky] + c;
#pragma GCC unroll 16
    for (int j = 0; j < kSpan; ++j) {
      if (kEdge == Edge::kLeft && j == 0) continue;
      if (kEdge == Edge::kRight && j == kSpan - 1) continue;
      if (kEdge == Edge::kChecked && (ix0 + j < 0 || ix0 + j >= r.in_w)) continue;
      const V x = Load<V>(in + (ix0 + j) * ch);
#pragma GCC unroll 16
      for (int t = 0; t < kCount; ++t) {
        const int kx = j - kStride * t;
        if (kx >= 0 && kx < 3) acc[t] += x * f[ky * 3 + kx];
      }
    }
  }
  for (int t = 0; t < kCount; ++t) Store(r.out + (ox + t) * ch + c, acc[t]);
}

// The whole output row for channels [c, c + lanes); output columns [begin, end) have all
// their taps inside the row.
template <class V, int kStride>
void ForwardRowBlock(const ForwardRow& r, int begin, int end, int out_w, int c) {
  V f[9];
  for (int k = 0; k < 9; ++k) f[k] = Load<V>(r.filter + k * r.channels + c);
  const auto border = [&](int ox) {
    const int ix0 = kStride * ox - r.pad_left;
    if (ix0 == -1 && ix0 + 2 < r.in_w) {
      ForwardColumns<V, kStride, 1, Edge::kLeft>(r, f, ox, c);
    } else if (ix0 >= 0 && ix0 + 2 == r.in_w) {
      ForwardColumns<V, kStride, 1, Edge::kRight>(r, f, ox, c);
    } else {
      ForwardColumns<V, kStride, 1, Edge::kChecked>(r, f, ox, c);
    }
  };
  int ox = 0;
  for (; ox < begin; ++ox) border(ox);
  for (; ox + kTile<kStride> <= end; ox += kTile<kStride>) {
    ForwardColumns<V, kStride, kTile<kStride>, Edge::kNone>(r, f, ox, c);
  }
  for (; ox < end; ++ox) ForwardColumns<V, kStride, 1, Edge::kNone>(r, f, ox, c);
  for (; ox < out_w; ++ox) border(ox);
}

template <int kStride>
void ForwardImpl(const ConvGeometry& g, const float* input, const float* filter, float* output) {
  const int ch = g.in_channels;
  // Output columns [begin, end) have all three taps inside the row.
  const int begin = std::min((g.pad_left + kStride - 1) / kStride, g.out_w);
  const int end = std::clamp((g.in_w - 3 + g.pad_left + kStride) / kStride, begin, g.out_w);
  const std::vector<float> zeros(static_cast<size_t>(g.in_w) * ch, 0.0f);
  const int64_t in_row = int64_t{g.in_w} * ch;
  const int64_t out_row = int64_t{g.out_w} * ch;
  const int64_t rows = int64_t{g.batch} * g.out_h;

#pragma omp parallel for schedule(static) num_threads(ComputeThreads())
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t n = row / g.out_h;
    const int oy = static_cast<int>(row % g.out_h);
    ForwardRow r;
    for (int ky = 0; ky < 3; ++ky) {
      const int iy = kStride * oy - g.pad_top + ky;
      r.in[ky] = iy >= 0 && iy < g.in_h ? input + (n * g.in_h + iy) * in_row : zeros.data();
    }
    r.filter = filter;
    r.out = output + row * out_row;
    r.channels = ch;
    r.in_w = g.in_w;
    r.pad_left = g.pad_left;
    ForEachChannelBlock(ch, [&](auto lanes, int c) {
      ForwardRowBlock<decltype(lanes), kStride>(r, begin, end, g.out_w, c);
    });
  }
}

// ---------------------------------------------------------------------------------------
// Backward.

// One input row, the d_output rows its taps feed and where its gradients go.
// Output column ox reads input columns kStride * ox - pad_left + kx, kx = 0, 1, 2.
template <int kRows>
struct BackwardRow {
  const float* d_out[kRows];  // d_output rows (or zeros), column 0, channel 0
  int ky[kRows];              // ... and the filter row through which each met this row
  const float* x;             // input row
  const float* filter;
  float* d_in;      // d_input row; unused without kInputGrad
  float* d_filter;  // this thread's partial filter gradient
  int channels, in_w, out_w, pad_left;
};

// The taps of the feeding rows for one channel block, and their gradient sums over the
// row so far.
template <class V, int kRows>
struct BlockTaps {
  V f[kRows][3];
  V df[kRows][3];
};

// Input columns [ix, ix + kCount), channels [c, c + lanes), stride 1. Input column ix
// meets output column ix + pad_left - kx through tap kx. kEdge: which of those output
// columns do not exist (kChecked is not supported).
template <class V, int kRows, int kCount, bool kInputGrad, Edge kEdge = Edge::kNone>
inline void BackwardColumnsStride1(const BackwardRow<kRows>& r, BlockTaps<V, kRows>& taps, int ix,
                                   int c) {
  constexpr int kSpan = kCount + 2;  // d_output columns the inputs meet
  const int64_t ch = r.channels;
  const int ox0 = ix + r.pad_left - 2;
  V x[kCount], d_in[kCount];
  for (int t = 0; t < kCount; ++t) {
    x[t] = Load<V>(r.x + (ix + t) * ch + c);
    d_in[t] = V{};
  }
  for (int i = 0; i < kRows; ++i) {
    const float* d_out = r.d_out[i] + c;
#pragma GCC unroll 16
    for (int j = 0; j < kSpan; ++j) {
      if (kEdge == Edge::kLeft && j == 0) continue;
      if (kEdge == Edge::kRight && j == kSpan - 1) continue;
      const V g = Load<V>(d_out + (ox0 + j) * ch);
#pragma GCC unroll 16
      for (int t = 0; t < kCount; ++t) {
        const int kx = t + 2 - j;  // ox0 + j == ix + t + pad_left - kx
        if (kx < 0 || kx > 2) continue;
        if (kInputGrad) d_in[t] += g * taps.f[i][kx];
        taps.df[i][kx] += g * x[t];
      }
    }
  }
  if (kInputGrad) {
    for (int t = 0; t < kCount; ++t) Store(r.d_in + (ix + t) * ch + c, d_in[t]);
  }
}

// Input columns [2 * ox - pad_left, 2 * (ox + kCount) - pad_left), channels
// [c, c + lanes), stride 2: the even-offset column of each output column gets taps 0 (from
// ox) and 2 (from ox - 1), the odd-offset one tap 1. Unchecked: ox - 1 >= 0 and every
// column is inside the row.
template <class V, int kRows, int kCount, bool kInputGrad>
inline void BackwardColumnsStride2(const BackwardRow<kRows>& r, BlockTaps<V, kRows>& taps, int ox,
                                   int c) {
  constexpr int kWidth = 2 * kCount;  // input columns
  const int64_t ch = r.channels;
  const int ix0 = 2 * ox - r.pad_left;
  V x[kWidth], d_in[kWidth];
  for (int t = 0; t < kWidth; ++t) {
    x[t] = Load<V>(r.x + (ix0 + t) * ch + c);
    d_in[t] = V{};
  }
  for (int i = 0; i < kRows; ++i) {
    const float* d_out = r.d_out[i] + (ox - 1) * ch + c;
#pragma GCC unroll 16
    for (int j = 0; j <= kCount; ++j) {  // output column ox - 1 + j
      const V g = Load<V>(d_out + j * ch);
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) {
        const int t = 2 * (j - 1) + kx;  // its tap kx lands on input column ix0 + t
        if (t < 0 || t >= kWidth) continue;
        if (kInputGrad) d_in[t] += g * taps.f[i][kx];
        taps.df[i][kx] += g * x[t];
      }
    }
  }
  if (kInputGrad) {
    for (int t = 0; t < kWidth; ++t) Store(r.d_in + (ix0 + t) * ch + c, d_in[t]);
  }
}

// One input column with every check, either stride: the row ends.
template <class V, int kStride, int kRows, bool kInputGrad>
inline void BackwardColumnChecked(const BackwardRow<kRows>& r, BlockTaps<V, kRows>& taps, int ix,
                                  int c) {
  const int64_t ch = r.channels;
  const V x = Load<V>(r.x + ix * ch + c);
  V d_in{};
  for (int i = 0; i < kRows; ++i) {
    for (int kx = 0; kx < 3; ++kx) {
      const int shifted = ix + r.pad_left - kx;  // kStride * ox
      if (shifted < 0 || shifted % kStride != 0 || shifted / kStride >= r.out_w) continue;
      const V g = Load<V>(r.d_out[i] + (shifted / kStride) * ch + c);
      if (kInputGrad) d_in += g * taps.f[i][kx];
      taps.df[i][kx] += g * x;
    }
  }
  if (kInputGrad) Store(r.d_in + ix * ch + c, d_in);
}

// The whole row for channels [c, c + lanes).
template <class V, int kStride, int kRows, bool kInputGrad>
void BackwardRowBlock(const BackwardRow<kRows>& r, int c) {
  const int64_t ch = r.channels;
  BlockTaps<V, kRows> taps;
  for (int i = 0; i < kRows; ++i) {
    for (int kx = 0; kx < 3; ++kx) {
      taps.f[i][kx] = kInputGrad ? Load<V>(r.filter + (r.ky[i] * 3 + kx) * ch + c) : V{};
      taps.df[i][kx] = V{};
    }
  }
  const auto checked = [&](int ix) {
    BackwardColumnChecked<V, kStride, kRows, kInputGrad>(r, taps, ix, c);
  };
  if constexpr (kStride == 1) {
    // Input columns [begin, end) meet only existing output columns. (Stride 1 pads one
    // column on each side: the first column misses output column -1, the last in_w.)
    const int begin = std::min(std::max(0, 2 - r.pad_left), r.in_w);
    const int end = std::clamp(r.out_w - r.pad_left, begin, r.in_w);
    const auto border = [&](int ix) {
      if (r.in_w > 1 && ix == 0) {
        BackwardColumnsStride1<V, kRows, 1, kInputGrad, Edge::kLeft>(r, taps, ix, c);
      } else if (r.in_w > 1 && ix == r.in_w - 1) {
        BackwardColumnsStride1<V, kRows, 1, kInputGrad, Edge::kRight>(r, taps, ix, c);
      } else {
        checked(ix);
      }
    };
    int ix = 0;
    for (; ix < begin; ++ix) border(ix);
    for (; ix + kTile<1> <= end; ix += kTile<1>) {
      BackwardColumnsStride1<V, kRows, kTile<1>, kInputGrad>(r, taps, ix, c);
    }
    for (; ix < end; ++ix) BackwardColumnsStride1<V, kRows, 1, kInputGrad>(r, taps, ix, c);
    for (; ix < r.in_w; ++ix) border(ix);
  } else {
    // Output columns [begin, end) have a left neighbour and both their input columns
    // 2 * ox - pad_left (+ 1) inside the row.
    const int begin = std::min(std::max(1, (r.pad_left + 1) / 2), r.out_w);
    const int end = std::clamp((r.in_w - 2 + r.pad_left) / 2 + 1, begin, r.out_w);
    int ix = 0;
    for (; ix < std::min(2 * begin - r.pad_left, r.in_w); ++ix) checked(ix);
    int ox = begin;
    for (; ox + kTile<2> <= end; ox += kTile<2>) {
      BackwardColumnsStride2<V, kRows, kTile<2>, kInputGrad>(r, taps, ox, c);
    }
    for (; ox < end; ++ox) BackwardColumnsStride2<V, kRows, 1, kInputGrad>(r, taps, ox, c);
    for (ix = std::max(ix, 2 * end - r.pad_left); ix < r.in_w; ++ix) checked(ix);
  }
  for (int i = 0; i < kRows; ++i) {
    for (int kx = 0; kx < 3; ++kx) {
      float* d_f = r.d_filter + (r.ky[i] * 3 + kx) * ch + c;
      Store(d_f, Load<V>(d_f) + taps.df[i][kx]);
    }
  }
}

// The tensors of one backward call.
struct BackwardTensors {
  const float* input;
  const float* filter;
  const float* d_output;
  float* d_input;      // null without kInputGrad
  const float* zeros;  // a d_output row of zeros
};

// Input row `row` (n * in_h + iy), fed through filter rows `kys` (those matching iy's
// parity for stride 2): its d_input and its share of d_filter.
template <int kStride, bool kInputGrad, int kRows>
void BackwardInputRow(const ConvGeometry& g, const BackwardTensors& t, int64_t row,
                      const int (&kys)[kRows], float* d_filter) {
  const int64_t n = row / g.in_h;
  const int iy = static_cast<int>(row % g.in_h);
  const int64_t in_row = int64_t{g.in_w} * g.in_channels;
  BackwardRow<kRows> r;
  for (int i = 0; i < kRows; ++i) {
    // Output row oy meets input row iy through filter row ky = iy + pad_top - stride * oy.
    const int oy = (iy + g.pad_top - kys[i]) / kStride;
    r.ky[i] = kys[i];
    r.d_out[i] = oy >= 0 && oy < g.out_h
                     ? t.d_output + (n * g.out_h + oy) * g.out_w * g.out_channels
                     : t.zeros;
  }
  r.x = t.input + row * in_row;
  r.filter = t.filter;
  r.d_in = kInputGrad ? t.d_input + row * in_row : nullptr;
  r.d_filter = d_filter;
  r.channels = g.in_channels;
  r.in_w = g.in_w;
  r.out_w = g.out_w;
  r.pad_left = g.pad_left;
  ForEachChannelBlock(r.channels, [&](auto lanes, int c) {
    BackwardRowBlock<decltype(lanes), kStride, kRows, kInputGrad>(r, c);
  });
}

template <int kStride, bool kInputGrad>
void BackwardImpl(const ConvGeometry& g, const float* input, const float* filter,
                  const float* d_output, float* d_input, float* d_filter) {
  const std::vector<float> zeros(static_cast<size_t>(g.out_w) * g.out_channels, 0.0f);
  const BackwardTensors tensors = {input, filter, d_output, d_input, zeros.data()};
  const int64_t rows = int64_t{g.batch} * g.in_h;
  const int64_t filter_size = 9 * int64_t{g.in_channels};
  const int threads = ComputeThreads();
  // A cache line of padding between the partial filters, which different threads write.
  const int64_t partial_stride = (filter_size + 31) / 16 * 16;
  std::vector<float> partials(static_cast<size_t>(threads * partial_stride), 0.0f);

#pragma omp parallel num_threads(threads)
  {
    float* my_d_filter = partials.data() + omp_get_thread_num() * partial_stride;
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      if constexpr (kStride == 1) {
        BackwardInputRow<1, kInputGrad>(g, tensors, row, {0, 1, 2}, my_d_filter);
      } else if ((row % g.in_h + g.pad_top) % 2 == 0) {
        BackwardInputRow<2, kInputGrad>(g, tensors, row, {0, 2}, my_d_filter);
      } else {
        BackwardInputRow<2, kInputGrad>(g, tensors, row, {1}, my_d_filter);
      }
    }
  }
  for (int t = 0; t < threads; ++t) {
    const float* partial = partials.data() + t * partial_stride;
    for (int64_t i = 0; i < filter_size; ++i) d_filter[i] += partial[i];
  }
}

}  // namespace

void DepthwiseConvForward(const ConvGeometry& g, const float* input, const float* filter,
                          float* output) {
  CheckGeometry(g);
  if (g.stride == 1) {
    ForwardImpl<1>(g, input, filter, output);
  } else {
    ForwardImpl<2>(g, input, filter, output);
  }
}

void DepthwiseConvBackward(const ConvGeometry& g, const float* input, const float* filter,
                           const float* d_output, float* d_input, float* d_filter) {
  CheckGeometry(g);
  if (g.stride == 1) {
    if (d_input != nullptr) {
      BackwardImpl<1, true>(g, input, filter, d_output, d_input, d_filter);
    } else {
      BackwardImpl<1, false>(g, input, filter, d_output, d_input, d_filter);
    }
  } else {
    if (d_input != nullptr) {
      BackwardImpl<2, true>(g, input, filter, d_output, d_input, d_filter);
    } else {
      BackwardImpl<2, false>(g, input, filter, d_output, d_input, d_filter);
    }
  }
}

void DepthwiseConvForwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                               float* output) {
  const int ch = g.in_channels;
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox) {
        for (int c = 0; c < ch; ++c) {
          double sum = 0;
          for (int ky = 0; ky < 3; ++ky) {
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = oy * g.stride - g.pad_top + ky;
              const int ix = ox * g.stride - g.pad_left + kx;
              if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
              sum += double{input[((int64_t{n} * g.in_h + iy) * g.in_w + ix) * ch + c]} *
                     filter[(ky * 3 + kx) * ch + c];
            }
          }
          output[((int64_t{n} * g.out_h + oy) * g.out_w + ox) * ch + c] = static_cast<float>(sum);
        }
      }
    }
  }
}

void DepthwiseConvBackwardNaive(const ConvGeometry& g, const float* input, const float* filter,
                                const float* d_output, float* d_input, float* d_filter) {
  const int ch = g.in_channels;
  std::vector<double> d_in(d_input != nullptr ? g.input_size() : 0, 0.0);
  std::vector<double> d_f(9 * ch, 0.0);
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox) {
        for (int c = 0; c < ch; ++c) {
          const double d = d_output[((int64_t{n} * g.out_h + oy) * g.out_w + ox) * ch + c];
          for (int ky = 0; ky < 3; ++ky) {
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = oy * g.stride - g.pad_top + ky;
              const int ix = ox * g.stride - g.pad_left + kx;
              if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
              const int64_t at = ((int64_t{n} * g.in_h + iy) * g.in_w + ix) * ch + c;
              const int k = (ky * 3 + kx) * ch + c;
              d_f[k] += d * input[at];
              if (d_input != nullptr) d_in[at] += d * filter[k];
            }
          }
        }
      }
    }
  }
  for (int k = 0; k < 9 * ch; ++k) d_filter[k] += static_cast<float>(d_f[k]);
  for (size_t i = 0; i < d_in.size(); ++i) d_input[i] = static_cast<float>(d_in[i]);
}

}  // namespace mobilenet
