#include "worker/batch_statistics.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

TEST(UnbiasBatchVariancesTest, ScalesVariancesByMOverMMinusOne) {
  MobileNetConfig config;
  config.alpha = 0.25f;
  config.resolution = 32;
  config.num_classes = 10;
  absl::StatusOr<Architecture> arch = BuildArchitecture(config);
  ASSERT_TRUE(arch.ok()) << arch.status();
  const ParameterLayout state = BuildStateLayout(*arch);
  std::vector<float> stats(state.total_size(), 1.0f);
  ASSERT_TRUE(UnbiasBatchVariances(*arch, state, 2, absl::MakeSpan(stats)).ok());

  // Conv2d_0 at resolution 32, stride 2: 16x16 outputs, M = 2 * 256 = 512.
  const TensorView* first_variance = *state.Find("MobilenetV1/Conv2d_0/BatchNorm/moving_variance");
  EXPECT_FLOAT_EQ(stats[first_variance->offset], 512.0f / 511.0f);
  const TensorView* first_mean = *state.Find("MobilenetV1/Conv2d_0/BatchNorm/moving_mean");
  EXPECT_EQ(stats[first_mean->offset], 1.0f);
  // The last convolution is 1x1 spatially: M = 2, variance doubled.
  const ConvLayerSpec& last = arch->convs.back();
  ASSERT_EQ(last.out_h * last.out_w, 1);
  const TensorView* last_variance = *state.Find(last.name + "/BatchNorm/moving_variance");
  EXPECT_FLOAT_EQ(stats[last_variance->offset + last_variance->size - 1], 2.0f);
}

TEST(UnbiasBatchVariancesTest, RejectsBadBatchAndBufferSize) {
  MobileNetConfig config;
  config.alpha = 0.25f;
  config.resolution = 32;
  config.num_classes = 10;
  absl::StatusOr<Architecture> arch = BuildArchitecture(config);
  ASSERT_TRUE(arch.ok()) << arch.status();
  const ParameterLayout state = BuildStateLayout(*arch);
  std::vector<float> stats(state.total_size() - 1, 1.0f);
  absl::Status status = UnbiasBatchVariances(*arch, state, 2, absl::MakeSpan(stats));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("expected"));
  stats.resize(state.total_size());
  EXPECT_EQ(UnbiasBatchVariances(*arch, state, 0, absl::MakeSpan(stats)).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
