#include "parameter_server/core/duration_histogram.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;

TEST(DurationHistogramTest, CountsEachSampleInTheFirstBucketThatHoldsIt) {
  DurationHistogram histogram({0.001, 0.01, 0.1});
  histogram.Add(absl::Microseconds(500));
  histogram.Add(absl::Milliseconds(1));  // on a bound: that bucket (le)
  histogram.Add(absl::Milliseconds(50));
  histogram.Add(absl::Seconds(3));
  histogram.Add(-absl::Seconds(1));  // as zero
  EXPECT_THAT(histogram.counts(), ElementsAre(3, 0, 1, 1));
  EXPECT_EQ(histogram.count(), 5);
  EXPECT_NEAR(histogram.sum_seconds(), 0.0005 + 0.001 + 0.05 + 3, 1e-9);
}

TEST(DurationHistogramTest, EmptyHasZeroCounts) {
  DurationHistogram histogram({1, 2});
  EXPECT_THAT(histogram.counts(), ElementsAre(0, 0, 0));
  EXPECT_EQ(histogram.count(), 0);
  EXPECT_EQ(histogram.sum_seconds(), 0);
}

}  // namespace
}  // namespace mobilenet
