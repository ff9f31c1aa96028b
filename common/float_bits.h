// Branch-free tests on the bits of a float, so that loops over large buffers vectorize:
// the magnitude of a float orders like the integer of its bits without the sign, and
// NaN and infinity (exponent all ones) order above every finite value.
#ifndef MOBILENET_COMMON_FLOAT_BITS_H_
#define MOBILENET_COMMON_FLOAT_BITS_H_

#include <cstdint>
#include <cstring>

namespace mobilenet {

// The bits of |x|.
inline uint32_t AbsBits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits & 0x7fffffffu;
}

// The float whose bits are `bits` (e.g. a maximum of AbsBits: the largest magnitude).
inline float FloatFromBits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// 1 when x is NaN or infinite, else 0.
inline uint32_t NonFiniteBit(float x) { return AbsBits(x) >= 0x7f800000u ? 1u : 0u; }

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_FLOAT_BITS_H_
