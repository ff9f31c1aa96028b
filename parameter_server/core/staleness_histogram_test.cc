#include "parameter_server/core/staleness_histogram.h"

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(StalenessHistogramTest, EmptyReportsZeros) {
  StalenessHistogram histogram;
  EXPECT_EQ(histogram.count(), 0);
  EXPECT_EQ(histogram.max(), 0);
  EXPECT_EQ(histogram.Percentile(0.5), 0);
  EXPECT_EQ(histogram.mean(), 0.0);
}

TEST(StalenessHistogramTest, NearestRankPercentiles) {
  // Samples 0 x5, 1 x3, 2 x1, 9 x1 (10 samples).
  StalenessHistogram histogram;
  for (int i = 0; i < 5; ++i) histogram.Add(0);
  for (int i = 0; i < 3; ++i) histogram.Add(1);
  histogram.Add(2);
  histogram.Add(9);
  EXPECT_EQ(histogram.count(), 10);
  EXPECT_EQ(histogram.Percentile(0.0), 0);
  EXPECT_EQ(histogram.Percentile(0.5), 0);   // rank 5 -> 0
  EXPECT_EQ(histogram.Percentile(0.51), 1);  // rank 6 -> 1
  EXPECT_EQ(histogram.Percentile(0.9), 2);   // rank 9 -> 2
  EXPECT_EQ(histogram.Percentile(0.95), 9);  // rank 10 -> 9
  EXPECT_EQ(histogram.Percentile(1.0), 9);
  EXPECT_EQ(histogram.max(), 9);
  EXPECT_DOUBLE_EQ(histogram.mean(), (3 + 2 + 9) / 10.0);
}

}  // namespace
}  // namespace mobilenet
