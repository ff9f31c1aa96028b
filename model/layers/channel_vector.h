// Internal to the convolution kernels: channel blocks held in one vector register.
// Header-only. GCC/Clang vector extensions, so the same kernel source compiles to AVX-512
// or AVX2 registers; `float` stands for a single channel.
#ifndef MOBILENET_MODEL_LAYERS_CHANNEL_VECTOR_H_
#define MOBILENET_MODEL_LAYERS_CHANNEL_VECTOR_H_

#include <cstring>

namespace mobilenet {
namespace channel_vector {

typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec8 __attribute__((vector_size(32)));

// Unaligned load and store of a block starting at p.
template <class V>
inline V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <class V>
inline void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// Every lane x. (x - 0 is exactly x, -0 included, so this compiles to a bare broadcast;
// 0 + x would not.)
template <class V>
inline V Splat(float x) {
  return x - V{};
}

// Calls body(V{}, c) for blocks [c, c + lanes of V) covering [0, channels): 16 lanes while
// they fit (AVX-512 builds only), then 8, then single channels.
template <class Body>
inline void ForEachChannelBlock(int channels, Body&& body) {
  int c = 0;
#if defined(__AVX512F__)
  for (; c + 16 <= channels; c += 16) body(Vec16{}, c);
#endif
  for (; c + 8 <= channels; c += 8) body(Vec8{}, c);
  for (; c < channels; ++c) body(float{}, c);
}

}  // namespace channel_vector
}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_CHANNEL_VECTOR_H_
