// The number formats a float payload may travel in (mobilenet.ps.v1.PayloadDtype), and the
// conversions between them and float32: bfloat16 (float32's sign and exponent, 7 mantissa
// bits) and IEEE binary16 (5 exponent bits, 10 mantissa bits, subnormals). Rounding is to
// nearest, ties to even; NaN stays a (quiet) NaN and infinities stay infinite; a finite
// value beyond the format's range rounds to infinity as IEEE 754 does.
//
// Each conversion has a scalar reference (*Scalar) beside the fast one, which uses AVX2
// integer operations for bfloat16 and F16C for binary16 when the build enables them (the
// scalar code otherwise); both give the same bits for every input.
//
// Also the error-feedback encoder of compressed gradients: what rounding takes from one
// push is kept by the sender and added to its next one, so that the sum of what a server
// receives follows the sum of the gradients (Seide et al. 2014; Karimireddy et al. 2019).
#ifndef MOBILENET_COMMON_FLOAT_CONVERSION_H_
#define MOBILENET_COMMON_FLOAT_CONVERSION_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mobilenet {

// The values are those of mobilenet.ps.v1.PayloadDtype.
enum class WireDtype : int {
  kFloat32 = 0,
  kBfloat16 = 1,
  kFloat16 = 2,
};

// Bytes of one value: 4, 2 or 2.
size_t BytesPerValue(WireDtype dtype);
// "fp32", "bf16" or "fp16" (the flag spelling).
absl::string_view WireDtypeName(WireDtype dtype);
// The dtype spelled `name` ("fp32", "bf16", "fp16"); InvalidArgument naming the choices.
absl::StatusOr<WireDtype> ParseWireDtype(absl::string_view name);
// The largest finite value of `dtype` (FLT_MAX, 3.3895e38, 65504).
float LargestFinite(WireDtype dtype);

// For ABSL_FLAG(mobilenet::WireDtype, ...).
bool AbslParseFlag(absl::string_view text, WireDtype* dtype, std::string* error);
std::string AbslUnparseFlag(WireDtype dtype);

// Scalar references, one value at a time.
uint16_t Bfloat16FromFloatScalar(float value);
float FloatFromBfloat16Scalar(uint16_t bits);  // exact
uint16_t Float16FromFloatScalar(float value);
float FloatFromFloat16Scalar(uint16_t bits);  // exact; a signaling NaN becomes quiet
// The reference of a 16-bit `dtype` (kBfloat16 or kFloat16; checked).
uint16_t HalfFromFloatScalar(WireDtype dtype, float value);
float FloatFromHalfScalar(WireDtype dtype, uint16_t bits);

// Writes `values` in `dtype` to `out` (values.size() * BytesPerValue(dtype) bytes, any
// alignment, little-endian; not overlapping `values`).
void EncodeFloats(WireDtype dtype, absl::Span<const float> values, char* out);
// Reads values.size() values of `dtype` at `in` (any alignment) into `values` as float32.
void DecodeFloats(WireDtype dtype, const char* in, absl::Span<float> values);

// The error-feedback encoder. For each i, with v = values[i] + residual[i] computed in
// float32: writes q = v in `dtype` to `out` (as EncodeFloats) and next_residual[i] =
// v - decode(q), so that decode(q) + next_residual[i] == v exactly. A finite v beyond the
// dtype's range is sent as its largest finite value of the same sign (never as infinity)
// and the excess is kept in the residual (exactly for bfloat16, and for binary16 while
// |v| < 2^29); a NaN or
// infinite v is sent as it is (servers refuse it) with a residual of 0. For kFloat32, q = v
// and the residual is 0. The spans have one size; next_residual may be residual (in place)
// but neither may overlap `out`.
void EncodeWithErrorFeedback(WireDtype dtype, absl::Span<const float> values,
                             absl::Span<const float> residual, absl::Span<float> next_residual,
                             char* out);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_FLOAT_CONVERSION_H_
