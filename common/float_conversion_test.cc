#include "common/float_conversion.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/float_bits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

constexpr WireDtype kHalfDtypes[] = {WireDtype::kBfloat16, WireDtype::kFloat16};

uint32_t BitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

std::vector<uint16_t> Encode(WireDtype dtype, const std::vector<float>& values) {
  std::vector<uint16_t> out(values.size());
  EncodeFloats(dtype, values, reinterpret_cast<char*>(out.data()));
  return out;
}

// Special values and their neighbours for both formats, then random bit patterns and
// random values near the formats' rounding points.
std::vector<float> TestValues() {
  std::vector<uint32_t> bits = {
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00800000,  // zeros, fp32 subnormals
      0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001,  // inf, NaN (quiet, signaling)
      0x7fbfffff, 0xff800001, 0x7f7fffff, 0xff7fffff, 0x7f7f8000,  // NaN payloads, FLT_MAX
      0x7f7f7fff, 0x7f7f8001, 0x3f808000, 0x3f818000, 0x3f808001,  // bf16 ties and overflow
      0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0xc77ff000,  // fp16 max and its overflow
      0x38800000, 0x387fffff, 0x33000000, 0x33000001, 0x33800000,  // fp16 subnormal bounds
      0x33c00000, 0x34400000, 0x38000000, 0x37800000, 0x3a801000,  // subnormal ties
  };
  std::mt19937 random(7);
  for (int i = 0; i < 200000; ++i) bits.push_back(random());
  // Values near every fp16 exponent, with tie and near-tie low bits.
  for (uint32_t exponent = 100; exponent < 145; ++exponent) {
    for (uint32_t low : {0x0u, 0x1000u, 0x0fffu, 0x1001u, 0x3000u, 0x8000u, 0x18000u}) {
      const uint32_t mantissa = (random() & 0x7fe000u) | low;
      bits.push_back((exponent << 23) | mantissa);
      bits.push_back(0x80000000u | (exponent << 23) | mantissa);
    }
  }
  std::vector<float> values;
  for (uint32_t b : bits) values.push_back(FloatFromBits(b));
  return values;
}

TEST(WireDtypeTest, NamesParseAndSizes) {
  for (WireDtype dtype : {WireDtype::kFloat32, WireDtype::kBfloat16, WireDtype::kFloat16}) {
    absl::StatusOr<WireDtype> parsed = ParseWireDtype(WireDtypeName(dtype));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_EQ(BytesPerValue(WireDtype::kFloat32), 4u);
  EXPECT_EQ(BytesPerValue(WireDtype::kBfloat16), 2u);
  EXPECT_EQ(BytesPerValue(WireDtype::kFloat16), 2u);
  EXPECT_THAT(ParseWireDtype("int8").status().message(),
              HasSubstr("\"int8\": expected fp32, bf16 or fp16"));
  std::string error;
  WireDtype dtype;
  EXPECT_FALSE(AbslParseFlag("fp64", &dtype, &error));
  EXPECT_THAT(error, HasSubstr("fp64"));
  EXPECT_EQ(AbslUnparseFlag(WireDtype::kBfloat16), "bf16");
}

TEST(Bfloat16ScalarTest, RoundsToNearestEven) {
  EXPECT_EQ(Bfloat16FromFloatScalar(1.0f), 0x3f80);
  EXPECT_EQ(Bfloat16FromFloatScalar(FloatFromBits(0x3f808000)), 0x3f80);  // tie, even below
  EXPECT_EQ(Bfloat16FromFloatScalar(FloatFromBits(0x3f818000)), 0x3f82);  // tie, even above
  EXPECT_EQ(Bfloat16FromFloatScalar(FloatFromBits(0x3f808001)), 0x3f81);  // above the tie
  EXPECT_EQ(Bfloat16FromFloatScalar(FloatFromBits(0x3f807fff)), 0x3f80);  // below the tie
  EXPECT_EQ(Bfloat16FromFloatScalar(-2.0f), 0xc000);
}

TEST(Bfloat16ScalarTest, KeepsSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Bfloat16FromFloatScalar(inf), 0x7f80);
  EXPECT_EQ(Bfloat16FromFloatScalar(-inf), 0xff80);
  // FLT_MAX is above the largest bfloat16's tie with 2^128: infinity, as IEEE rounds.
  EXPECT_EQ(Bfloat16FromFloatScalar(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(Bfloat16FromFloatScalar(FloatFromBits(0x7f7f7fff)), 0x7f7f);
  // A NaN whose payload is only in the dropped bits stays NaN (quiet), never infinity.
  for (uint32_t nan : {0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7fbfffffu}) {
    const uint16_t bf16 = Bfloat16FromFloatScalar(FloatFromBits(nan));
    EXPECT_TRUE(std::isnan(FloatFromBfloat16Scalar(bf16))) << std::hex << nan;
    EXPECT_EQ(bf16 & 0x40, 0x40) << "quiet bit of " << std::hex << nan;
    EXPECT_EQ(bf16 & 0x8000, (nan >> 16) & 0x8000) << "sign of " << std::hex << nan;
  }
  EXPECT_EQ(BitsOf(FloatFromBfloat16Scalar(0x8000)), 0x80000000u);  // -0
}

TEST(Float16ScalarTest, RoundsToNearestEvenWithSubnormalsAndOverflow) {
  EXPECT_EQ(Float16FromFloatScalar(1.0f), 0x3c00);
  EXPECT_EQ(Float16FromFloatScalar(-2.5f), 0xc100);
  EXPECT_EQ(Float16FromFloatScalar(65504.0f), 0x7bff);
  EXPECT_EQ(Float16FromFloatScalar(65519.99f), 0x7bff);
  EXPECT_EQ(Float16FromFloatScalar(65520.0f), 0x7c00);  // the tie goes to even: infinity
  EXPECT_EQ(Float16FromFloatScalar(-1e6f), 0xfc00);
  EXPECT_EQ(Float16FromFloatScalar(0x1p-14f), 0x0400);         // smallest normal
  EXPECT_EQ(Float16FromFloatScalar(0x1p-24f), 0x0001);         // smallest subnormal
  EXPECT_EQ(Float16FromFloatScalar(0x1p-25f), 0x0000);         // its half: ties to even zero
  EXPECT_EQ(Float16FromFloatScalar(0x1.8p-24f), 0x0002);       // 1.5 units: ties to even 2
  EXPECT_EQ(Float16FromFloatScalar(0x1.000002p-25f), 0x0001);  // just above the half
  EXPECT_EQ(Float16FromFloatScalar(-0x1p-30f), 0x8000);
  EXPECT_EQ(Float16FromFloatScalar(0x1.ff8p-15f), 0x03ff);  // largest subnormal
  EXPECT_EQ(Float16FromFloatScalar(0x1.ffap-15f), 0x03ff);
  EXPECT_EQ(Float16FromFloatScalar(0x1.ffcp-15f), 0x0400);     // tie: even, the smallest normal
  EXPECT_EQ(Float16FromFloatScalar(1.0f + 0x1p-11f), 0x3c00);  // tie, even below
  EXPECT_EQ(Float16FromFloatScalar(1.0f + 0x3p-11f), 0x3c02);  // tie, even above
  EXPECT_EQ(Float16FromFloatScalar(std::numeric_limits<float>::infinity()), 0x7c00);
  const uint16_t nan = Float16FromFloatScalar(FloatFromBits(0xff800001));
  EXPECT_EQ(nan & 0xfe00, 0xfe00);  // negative quiet NaN
  EXPECT_EQ(FloatFromFloat16Scalar(0x0001), 0x1p-24f);
  EXPECT_EQ(FloatFromFloat16Scalar(0x7bff), 65504.0f);
  EXPECT_EQ(FloatFromFloat16Scalar(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(FloatFromFloat16Scalar(0x7c01)));
}

TEST(ScalarConversionTest, EveryHalfValueRoundTrips) {
  for (WireDtype dtype : kHalfDtypes) {
    for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
      const float value = FloatFromHalfScalar(dtype, static_cast<uint16_t>(bits));
      const uint16_t back = HalfFromFloatScalar(dtype, value);
      if (std::isnan(value)) {
        EXPECT_TRUE(std::isnan(FloatFromHalfScalar(dtype, back)));
        // A quiet NaN comes back as it was.
        const uint16_t quiet_bit = dtype == WireDtype::kBfloat16 ? 0x40 : 0x200;
        if (bits & quiet_bit) {
          EXPECT_EQ(back, bits) << WireDtypeName(dtype) << std::hex << bits;
        }
      } else {
        EXPECT_EQ(back, bits) << WireDtypeName(dtype) << " " << std::hex << bits;
      }
    }
  }
}

TEST(ScalarConversionTest, RoundsToTheNearestHalfValue) {
  // The encoded value is one of the two half values around the input, the nearer one.
  std::mt19937 random(3);
  std::uniform_real_distribution<float> exponent(-26.0f, 17.0f);
  for (WireDtype dtype : kHalfDtypes) {
    for (int i = 0; i < 100000; ++i) {
      const float value = std::exp2(exponent(random)) * (random() % 2 ? 1 : -1);
      const uint16_t bits = HalfFromFloatScalar(dtype, value);
      const float rounded = FloatFromHalfScalar(dtype, bits);
      if (std::isinf(rounded)) continue;  // fp16 overflow, checked above
      const float other = FloatFromHalfScalar(
          dtype, static_cast<uint16_t>(std::abs(rounded) < std::abs(value) ? bits + 1 : bits - 1));
      if ((bits & 0x7fff) == 0 && std::abs(value) < std::abs(rounded)) continue;
      EXPECT_LE(std::abs(double(rounded) - value), std::abs(double(other) - value))
          << WireDtypeName(dtype) << " " << value;
    }
  }
}

TEST(FastConversionTest, EncodeMatchesTheScalarReference) {
  const std::vector<float> values = TestValues();
  for (WireDtype dtype : kHalfDtypes) {
    const std::vector<uint16_t> fast = Encode(dtype, values);
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(fast[i], HalfFromFloatScalar(dtype, values[i]))
          << WireDtypeName(dtype) << " of 0x" << std::hex << BitsOf(values[i]);
    }
  }
}

TEST(FastConversionTest, DecodeMatchesTheScalarReferenceForEveryBitPattern) {
  std::vector<uint16_t> all(0x10000 + 3);  // + 3: a scalar tail after the vector loop
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  for (WireDtype dtype : kHalfDtypes) {
    std::vector<float> decoded(all.size());
    DecodeFloats(dtype, reinterpret_cast<const char*>(all.data()), absl::MakeSpan(decoded));
    for (size_t i = 0; i < all.size(); ++i) {
      ASSERT_EQ(BitsOf(decoded[i]), BitsOf(FloatFromHalfScalar(dtype, all[i])))
          << WireDtypeName(dtype) << " of 0x" << std::hex << all[i];
    }
  }
}

TEST(FastConversionTest, Float32IsACopyAndUnalignedBuffersWork) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 1e-30f, 7.0f};
  std::vector<char> bytes(values.size() * 4 + 1);
  EncodeFloats(WireDtype::kFloat32, values, bytes.data() + 1);
  std::vector<float> back(values.size());
  DecodeFloats(WireDtype::kFloat32, bytes.data() + 1, absl::MakeSpan(back));
  EXPECT_EQ(back, values);
  std::vector<float> many(37, 0.375f);
  std::vector<char> halves(many.size() * 2 + 1);
  EncodeFloats(WireDtype::kBfloat16, many, halves.data() + 1);
  std::vector<float> decoded(many.size());
  DecodeFloats(WireDtype::kBfloat16, halves.data() + 1, absl::MakeSpan(decoded));
  EXPECT_EQ(decoded, many);
}

// EncodeWithErrorFeedback over `values` and `residual`; returns the decoded values sent.
std::vector<float> SendWithFeedback(WireDtype dtype, const std::vector<float>& values,
                                    std::vector<float>& residual) {
  std::vector<char> bytes(values.size() * BytesPerValue(dtype));
  EncodeWithErrorFeedback(dtype, values, residual, absl::MakeSpan(residual), bytes.data());
  std::vector<float> sent(values.size());
  DecodeFloats(dtype, bytes.data(), absl::MakeSpan(sent));
  return sent;
}

TEST(ErrorFeedbackTest, SentPlusResidualIsExactlyTheSum) {
  std::mt19937 random(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (WireDtype dtype : kHalfDtypes) {
    std::vector<float> values(1003), residual(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      values[i] = normal(random) * std::exp2(static_cast<float>(static_cast<int>(i % 60) - 40));
      residual[i] = normal(random) * 1e-6f;
    }
    values[5] = 1e6f;  // beyond fp16: saturated, the excess kept
    values[6] = -7e4f;
    std::vector<float> sums(values.size());
    for (size_t i = 0; i < values.size(); ++i) sums[i] = values[i] + residual[i];
    const std::vector<float> sent = SendWithFeedback(dtype, values, residual);
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_TRUE(std::isfinite(sent[i])) << WireDtypeName(dtype) << " " << i;
      ASSERT_EQ(BitsOf(sent[i] + residual[i]), BitsOf(sums[i]))
          << WireDtypeName(dtype) << " " << i << ": " << sent[i] << " + " << residual[i];
      // The rounding is the plain conversion's wherever the sum is in range.
      if (std::abs(sums[i]) <= LargestFinite(dtype)) {
        ASSERT_EQ(HalfFromFloatScalar(dtype, sent[i]), HalfFromFloatScalar(dtype, sums[i]));
      }
    }
    EXPECT_EQ(sent[5], dtype == WireDtype::kFloat16 ? 65504.0f : sent[5]);
  }
}

TEST(ErrorFeedbackTest, MatchesTheScalarPathAndPassesNonFiniteValues) {
  // 8 vector lanes plus a scalar tail: both paths see a NaN, an infinity and large values.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {1.0f, std::nanf(""), inf,           -1e9f, 3e-9f, 0.1f, -0.7f,
                                     5e4f, 1.0f,          std::nanf(""), inf,   -1e9f, 3e-9f};
  for (WireDtype dtype : kHalfDtypes) {
    std::vector<float> residual(values.size(), 1e-3f);
    const std::vector<float> sent = SendWithFeedback(dtype, values, residual);
    for (size_t lane = 0; lane < 5; ++lane) {
      EXPECT_EQ(BitsOf(sent[lane]), BitsOf(sent[lane + 8])) << WireDtypeName(dtype) << lane;
      EXPECT_EQ(BitsOf(residual[lane]), BitsOf(residual[lane + 8])) << lane;
    }
    EXPECT_TRUE(std::isnan(sent[1]));
    EXPECT_EQ(sent[2], inf);
    EXPECT_EQ(residual[1], 0.0f);
    EXPECT_EQ(residual[2], 0.0f);
    EXPECT_EQ(sent[3], -LargestFinite(dtype) < -1e9f ? sent[3] : -LargestFinite(dtype));
  }
}

TEST(ErrorFeedbackTest, Float32SendsTheSumAndKeepsNothing) {
  std::vector<float> residual = {0.5f, -0.25f};
  const std::vector<float> sent = SendWithFeedback(WireDtype::kFloat32, {1.0f, 2.0f}, residual);
  EXPECT_EQ(sent, (std::vector<float>{1.5f, 1.75f}));
  EXPECT_EQ(residual, (std::vector<float>{0.0f, 0.0f}));
}

TEST(ErrorFeedbackTest, TheSumOfPushesTracksTheSumOfGradients) {
  // A gradient too small for one push to move its bfloat16 value: without feedback every
  // push would round it away (or bias it); with feedback the total sent is within one
  // rounding of the true total, however many pushes.
  std::mt19937 random(5);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  for (WireDtype dtype : kHalfDtypes) {
    const size_t n = 64;
    std::vector<float> residual(n, 0.0f);
    std::vector<double> true_total(n, 0.0), sent_total(n, 0.0);
    for (int push = 0; push < 2000; ++push) {
      std::vector<float> gradients(n);
      for (size_t i = 0; i < n; ++i) gradients[i] = 1.0f + 1e-4f * i + normal(random);
      const std::vector<float> sent = SendWithFeedback(dtype, gradients, residual);
      for (size_t i = 0; i < n; ++i) {
        true_total[i] += gradients[i];
        sent_total[i] += sent[i];
      }
    }
    for (size_t i = 0; i < n; ++i) {
      // The difference is the residual left (< one unit of the last place at ~1, 2^-7 for
      // bf16), and float32 rounding of the sums formed (far smaller).
      EXPECT_NEAR(sent_total[i], true_total[i], 0.01) << WireDtypeName(dtype) << " " << i;
      EXPECT_NEAR(sent_total[i] + residual[i], true_total[i], 2e-3) << WireDtypeName(dtype);
    }
  }
}

}  // namespace
}  // namespace mobilenet
