#include "common/gradient_ops.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(AddWeightDecayTest, AddsOnlyInsideTheRanges) {
  const std::vector<float> weights = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  std::vector<float> gradients = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  const std::vector<IndexRange> ranges = {{0, 1}, {3, 5}};
  // g += 0.5 * w on indices 0, 3, 4: 1 + 0.5, 1 + 2, 1 + 2.5.
  AddWeightDecay(0.5f, ranges, weights, absl::MakeSpan(gradients));
  EXPECT_EQ(gradients, (std::vector<float>{1.5f, 1.0f, 1.0f, 3.0f, 3.5f}));
}

TEST(GlobalNormTest, IsTheEuclideanNorm) {
  const std::vector<float> values = {3.0f, 0.0f, -4.0f};
  EXPECT_DOUBLE_EQ(GlobalNorm(values), 5.0);
  EXPECT_DOUBLE_EQ(GlobalNorm({}), 0.0);
}

TEST(ClipByGlobalNormTest, ScalesDownToTheClipNorm) {
  std::vector<float> values = {3.0f, -4.0f};
  // norm 5 > 2.5: scale by 2.5 / 5 = 0.5.
  EXPECT_DOUBLE_EQ(ClipByGlobalNorm(2.5, absl::MakeSpan(values)), 5.0);
  EXPECT_FLOAT_EQ(values[0], 1.5f);
  EXPECT_FLOAT_EQ(values[1], -2.0f);
  EXPECT_NEAR(GlobalNorm(values), 2.5, 1e-6);
}

TEST(ClipByGlobalNormTest, LeavesSmallNormsAndDisabledClippingAlone) {
  std::vector<float> values = {3.0f, -4.0f};
  EXPECT_DOUBLE_EQ(ClipByGlobalNorm(5.0, absl::MakeSpan(values)), 5.0);
  EXPECT_DOUBLE_EQ(ClipByGlobalNorm(0.0, absl::MakeSpan(values)), 5.0);
  EXPECT_EQ(values, (std::vector<float>{3.0f, -4.0f}));
}

TEST(ClipByGlobalNormTest, NonFiniteNormLeavesValuesUnchanged) {
  std::vector<float> values = {3.0f, std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(std::isinf(ClipByGlobalNorm(1.0, absl::MakeSpan(values))));
  EXPECT_EQ(values[0], 3.0f);
}

TEST(FindNonFiniteTest, FindsTheFirstNanOrInf) {
  std::vector<float> values = {1.0f, 2.0f, 3.0f};
  EXPECT_EQ(FindNonFinite(values), -1);
  values[2] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(FindNonFinite(values), 2);
  values[1] = std::nanf("");
  EXPECT_EQ(FindNonFinite(values), 1);
}

TEST(FindNonFiniteTest, FindsValuesFarIntoALongBuffer) {
  std::vector<float> values(10000, 1.0f);
  values[9001] = -std::numeric_limits<float>::infinity();
  values[9999] = std::nanf("");
  EXPECT_EQ(FindNonFinite(values), 9001);
  values[9001] = std::numeric_limits<float>::max();  // large but finite
  EXPECT_EQ(FindNonFinite(values), 9999);
}

TEST(CheckAllFiniteTest, NamesTheBufferAndIndex) {
  std::vector<float> values = {1.0f, std::nanf(""), 3.0f};
  absl::Status status = CheckAllFinite(values, "gradients");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("gradients[1] is nan"));
  EXPECT_TRUE(CheckAllFinite(std::vector<float>{1.0f}, "gradients").ok());
}

}  // namespace
}  // namespace mobilenet
