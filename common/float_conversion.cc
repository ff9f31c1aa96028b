#include "common/float_conversion.h"

#include <algorithm>
#include <cfloat>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/float_bits.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "payload values are little-endian and stored as memory");

uint32_t BitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

uint16_t Load16(const char* in) {
  uint16_t bits;
  std::memcpy(&bits, in, sizeof(bits));
  return bits;
}

void Store16(uint16_t bits, char* out) { std::memcpy(out, &bits, sizeof(bits)); }

// One value of EncodeWithErrorFeedback.
void EncodeOneWithErrorFeedback(WireDtype dtype, float value, float residual, float& next_residual,
                                char* out) {
  const float sum = value + residual;
  if (NonFiniteBit(sum)) {
    Store16(HalfFromFloatScalar(dtype, sum), out);
    next_residual = 0.0f;
    return;
  }
  const float largest = LargestFinite(dtype);
  const uint16_t bits = HalfFromFloatScalar(dtype, std::clamp(sum, -largest, largest));
  Store16(bits, out);
  next_residual = sum - FloatFromHalfScalar(dtype, bits);
}

#if defined(__AVX2__)
// Eight floats rounded to bfloat16, each in the low half of its 32-bit lane.
inline __m256i Bfloat16Lanes(__m256i bits) {
  const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
  const __m256i is_nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
  const __m256i high = _mm256_srli_epi32(bits, 16);
  const __m256i odd = _mm256_and_si256(high, _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(
      _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), odd), 16);
  const __m256i quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, quiet, is_nan);
}

// The low halves of eight 32-bit lanes, in order.
inline __m128i PackLanes(__m256i lanes) {
  return _mm_packus_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
}

inline __m256 LoadFloats(const float* in) { return _mm256_loadu_ps(in); }

inline __m256i ClampFinite(__m256 sum, float largest, __m256& clamped) {
  const __m256i magnitude =
      _mm256_and_si256(_mm256_castps_si256(sum), _mm256_set1_epi32(0x7fffffff));
  const __m256i finite = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f800000), magnitude);
  const __m256 limited =
      _mm256_max_ps(_mm256_set1_ps(-largest), _mm256_min_ps(_mm256_set1_ps(largest), sum));
  clamped = _mm256_blendv_ps(sum, limited, _mm256_castsi256_ps(finite));
  return finite;
}
#endif

void EncodeBfloat16(absl::Span<const float> values, char* out) {
  size_t i = 0;
#if defined(__AVX2__)
  for (; i + 8 <= values.size(); i += 8) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values.data() + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), PackLanes(Bfloat16Lanes(bits)));
  }
#endif
  for (; i < values.size(); ++i) Store16(Bfloat16FromFloatScalar(values[i]), out + 2 * i);
}

void DecodeBfloat16(const char* in, absl::Span<float> values) {
  size_t i = 0;
#if defined(__AVX2__)
  for (; i + 8 <= values.size(); i += 8) {
    const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(values.data() + i),
                        _mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
  }
#endif
  for (; i < values.size(); ++i) values[i] = FloatFromBfloat16Scalar(Load16(in + 2 * i));
}

void EncodeFloat16(absl::Span<const float> values, char* out) {
  size_t i = 0;
#if defined(__AVX2__) && defined(__F16C__)
  for (; i + 8 <= values.size(); i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i),
                     _mm256_cvtps_ph(LoadFloats(values.data() + i),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
#endif
  for (; i < values.size(); ++i) Store16(Float16FromFloatScalar(values[i]), out + 2 * i);
}

void DecodeFloat16(const char* in, absl::Span<float> values) {
  size_t i = 0;
#if defined(__AVX2__) && defined(__F16C__)
  for (; i + 8 <= values.size(); i += 8) {
    _mm256_storeu_ps(
        values.data() + i,
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i))));
  }
#endif
  for (; i < values.size(); ++i) values[i] = FloatFromFloat16Scalar(Load16(in + 2 * i));
}

void EncodeBfloat16WithErrorFeedback(absl::Span<const float> values,
                                     absl::Span<const float> residual,
                                     absl::Span<float> next_residual, char* out) {
  size_t i = 0;
#if defined(__AVX2__)
  const float largest = LargestFinite(WireDtype::kBfloat16);
  for (; i + 8 <= values.size(); i += 8) {
    const __m256 sum =
        _mm256_add_ps(LoadFloats(values.data() + i), LoadFloats(residual.data() + i));
    __m256 clamped;
    const __m256i finite = ClampFinite(sum, largest, clamped);
    const __m256i lanes = Bfloat16Lanes(_mm256_castps_si256(clamped));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), PackLanes(lanes));
    const __m256 sent = _mm256_castsi256_ps(_mm256_slli_epi32(lanes, 16));
    const __m256 left = _mm256_and_ps(_mm256_sub_ps(sum, sent), _mm256_castsi256_ps(finite));
    _mm256_storeu_ps(next_residual.data() + i, left);
  }
#endif
  for (; i < values.size(); ++i) {
    EncodeOneWithErrorFeedback(WireDtype::kBfloat16, values[i], residual[i], next_residual[i],
                               out + 2 * i);
  }
}

void EncodeFloat16WithErrorFeedback(absl::Span<const float> values,
                                    absl::Span<const float> residual,
                                    absl::Span<float> next_residual, char* out) {
  size_t i = 0;
#if defined(__AVX2__) && defined(__F16C__)
  const float largest = LargestFinite(WireDtype::kFloat16);
  for (; i + 8 <= values.size(); i += 8) {
    const __m256 sum =
        _mm256_add_ps(LoadFloats(values.data() + i), LoadFloats(residual.data() + i));
    __m256 clamped;
    const __m256i finite = ClampFinite(sum, largest, clamped);
    const __m128i halves = _mm256_cvtps_ph(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), halves);
    const __m256 left =
        _mm256_and_ps(_mm256_sub_ps(sum, _mm256_cvtph_ps(halves)), _mm256_castsi256_ps(finite));
    _mm256_storeu_ps(next_residual.data() + i, left);
  }
#endif
  for (; i < values.size(); ++i) {
    EncodeOneWithErrorFeedback(WireDtype::kFloat16, values[i], residual[i], next_residual[i],
                               out + 2 * i);
  }
}

}  // namespace

size_t BytesPerValue(WireDtype dtype) { return dtype == WireDtype::kFloat32 ? 4 : 2; }

absl::string_view WireDtypeName(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFloat32:
      return "fp32";
    case WireDtype::kBfloat16:
      return "bf16";
    case WireDtype::kFloat16:
      return "fp16";
  }
  return "unknown";
}

absl::StatusOr<WireDtype> ParseWireDtype(absl::string_view name) {
  for (WireDtype dtype : {WireDtype::kFloat32, WireDtype::kBfloat16, WireDtype::kFloat16}) {
    if (name == WireDtypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("wire dtype \"", name, "\": expected fp32, bf16 or fp16"));
}

float LargestFinite(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFloat32:
      return FLT_MAX;
    case WireDtype::kBfloat16:
      return FloatFromBits(0x7f7f0000u);
    case WireDtype::kFloat16:
      return 65504.0f;
  }
  return FLT_MAX;
}

bool AbslParseFlag(absl::string_view text, WireDtype* dtype, std::string* error) {
  absl::StatusOr<WireDtype> parsed = ParseWireDtype(text);
  if (!parsed.ok()) {
    *error = std::string(parsed.status().message());
    return false;
  }
  *dtype = *parsed;
  return true;
}

std::string AbslUnparseFlag(WireDtype dtype) { return std::string(WireDtypeName(dtype)); }

uint16_t Bfloat16FromFloatScalar(float value) {
  const uint32_t bits = BitsOf(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  // Adding just under half a unit of the kept bits, plus the lowest kept bit, rounds to
  // nearest with ties to even; a carry into the exponent is the IEEE result (up to inf).
  const uint32_t odd = (bits >> 16) & 1;
  return static_cast<uint16_t>((bits + 0x7fffu + odd) >> 16);
}

float FloatFromBfloat16Scalar(uint16_t bits) {
  return FloatFromBits(static_cast<uint32_t>(bits) << 16);
}

uint16_t Float16FromFloatScalar(float value) {
  const uint32_t bits = BitsOf(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: quiet, keeping the payload's top bits
    return sign | 0x7e00 | static_cast<uint16_t>((magnitude >> 13) & 0x3ff);
  }
  // 65520 = 65504 + half a unit ties to the even 65536, which overflows.
  if (magnitude >= 0x477ff000u) return sign | 0x7c00;
  if (magnitude >= 0x38800000u) {                     // normal in binary16 (>= 2^-14)
    uint32_t half = (magnitude - 0x38000000u) >> 13;  // rebiased exponent 127 -> 15
    const uint32_t rest = magnitude & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  // Subnormal in binary16: a multiple of 2^-24.
  const int exponent = static_cast<int>(magnitude >> 23);
  const int shift = 126 - exponent;  // value / 2^-24 = significand / 2^shift
  if (shift > 24) return sign;       // below 2^-25: rounds to zero
  const uint32_t significand = (magnitude & 0x7fffff) | 0x800000;
  uint32_t half = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1))) ++half;
  return sign | static_cast<uint16_t>(half);
}

float FloatFromFloat16Scalar(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0x1f) {
    return FloatFromBits(sign | 0x7f800000u | (mantissa != 0 ? 0x400000u : 0) | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float32
    return FloatFromBits(sign | BitsOf(static_cast<float>(mantissa) * 0x1p-24f));
  }
  return FloatFromBits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t HalfFromFloatScalar(WireDtype dtype, float value) {
  MOBILENET_CHECK(dtype != WireDtype::kFloat32);
  return dtype == WireDtype::kBfloat16 ? Bfloat16FromFloatScalar(value)
                                       : Float16FromFloatScalar(value);
}

float FloatFromHalfScalar(WireDtype dtype, uint16_t bits) {
  MOBILENET_CHECK(dtype != WireDtype::kFloat32);
  return dtype == WireDtype::kBfloat16 ? FloatFromBfloat16Scalar(bits)
                                       : FloatFromFloat16Scalar(bits);
}

void EncodeFloats(WireDtype dtype, absl::Span<const float> values, char* out) {
  switch (dtype) {
    case WireDtype::kFloat32:
      if (!values.empty()) std::memcpy(out, values.data(), values.size() * sizeof(float));
      return;
    case WireDtype::kBfloat16:
      return EncodeBfloat16(values, out);
    case WireDtype::kFloat16:
      return EncodeFloat16(values, out);
  }
  MOBILENET_CHECK(false);
}

void DecodeFloats(WireDtype dtype, const char* in, absl::Span<float> values) {
  switch (dtype) {
    case WireDtype::kFloat32:
      if (!values.empty()) std::memcpy(values.data(), in, values.size() * sizeof(float));
      return;
    case WireDtype::kBfloat16:
      return DecodeBfloat16(in, values);
    case WireDtype::kFloat16:
      return DecodeFloat16(in, values);
  }
  MOBILENET_CHECK(false);
}

void EncodeWithErrorFeedback(WireDtype dtype, absl::Span<const float> values,
                             absl::Span<const float> residual, absl::Span<float> next_residual,
                             char* out) {
  MOBILENET_CHECK(residual.size() == values.size() && next_residual.size() == values.size());
  switch (dtype) {
    case WireDtype::kFloat32:
      for (size_t i = 0; i < values.size(); ++i) {
        const float sum = values[i] + residual[i];
        std::memcpy(out + 4 * i, &sum, sizeof(sum));
        next_residual[i] = 0.0f;
      }
      return;
    case WireDtype::kBfloat16:
      return EncodeBfloat16WithErrorFeedback(values, residual, next_residual, out);
    case WireDtype::kFloat16:
      return EncodeFloat16WithErrorFeedback(values, residual, next_residual, out);
  }
  MOBILENET_CHECK(false);
}

}  // namespace mobilenet
