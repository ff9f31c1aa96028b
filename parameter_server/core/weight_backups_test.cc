#include "parameter_server/core/weight_backups.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

std::vector<float> Backup(const WeightBackups& backups, int worker, int64_t version) {
  const float* found = backups.Find(worker, version);
  if (found == nullptr) return {};
  return std::vector<float>(found, found + backups.size());
}

TEST(WeightBackupsTest, AllocatesAWorkersBuffersOnItsFirstPullOnly) {
  WeightBackups backups(3, 4);
  EXPECT_EQ(backups.allocated_floats(), 0);
  backups.Record(1, 0, std::vector<float>{1, 2, 3, 4});
  EXPECT_EQ(backups.allocated_floats(), WeightBackups::kPullsPerWorker * 4);
  backups.Record(1, 1, std::vector<float>{5, 6, 7, 8});
  backups.Record(2, 1, std::vector<float>{5, 6, 7, 8});
  EXPECT_EQ(backups.allocated_floats(), 2 * WeightBackups::kPullsPerWorker * 4);
}

TEST(WeightBackupsTest, KeepsTheLastTwoPullsOfEachWorkerByVersion) {
  WeightBackups backups(2, 2);
  backups.Record(0, 3, std::vector<float>{3, 3});
  backups.Record(0, 5, std::vector<float>{5, 5});
  backups.Record(1, 4, std::vector<float>{4, 4});
  EXPECT_EQ(Backup(backups, 0, 3), (std::vector<float>{3, 3}));
  EXPECT_EQ(Backup(backups, 0, 5), (std::vector<float>{5, 5}));
  EXPECT_EQ(Backup(backups, 0, 4), std::vector<float>());  // worker 1's version
  EXPECT_EQ(Backup(backups, 1, 4), (std::vector<float>{4, 4}));

  // A third pull replaces the oldest.
  backups.Record(0, 7, std::vector<float>{7, 7});
  EXPECT_EQ(Backup(backups, 0, 3), std::vector<float>());
  EXPECT_EQ(Backup(backups, 0, 5), (std::vector<float>{5, 5}));
  EXPECT_EQ(Backup(backups, 0, 7), (std::vector<float>{7, 7}));

  // A version already held is not copied again (it names the same weights), and one
  // older than everything held evicts nothing.
  backups.Record(0, 7, std::vector<float>{-1, -1});
  backups.Record(0, 2, std::vector<float>{2, 2});
  EXPECT_EQ(Backup(backups, 0, 5), (std::vector<float>{5, 5}));
  EXPECT_EQ(Backup(backups, 0, 7), (std::vector<float>{7, 7}));
  EXPECT_EQ(Backup(backups, 0, 2), std::vector<float>());
}

TEST(WeightBackupsTest, WorkersOutsideTheClusterAndForgottenBackupsFindNothing) {
  WeightBackups backups(1, 2);
  backups.Record(1, 0, std::vector<float>{1, 1});
  backups.Record(-1, 0, std::vector<float>{1, 1});
  EXPECT_EQ(backups.allocated_floats(), 0);
  EXPECT_EQ(backups.Find(1, 0), nullptr);
  EXPECT_EQ(backups.Find(-1, 0), nullptr);
  backups.Record(0, 0, std::vector<float>{1, 1});
  ASSERT_NE(backups.Find(0, 0), nullptr);
  backups.Clear();
  EXPECT_EQ(backups.Find(0, 0), nullptr);
  EXPECT_EQ(backups.allocated_floats(), 2 * WeightBackups::kPullsPerWorker);

  WeightBackups none(0, 2);
  none.Record(0, 0, std::vector<float>{1, 1});
  EXPECT_EQ(none.Find(0, 0), nullptr);
}

TEST(CompensateDelayTest, AddsLambdaTimesGradientSquaredTimesTheWeightsMove) {
  // g~ = g + 0.5 * g^2 * (now - backup):
  //   2 + 0.5 * 4 * (1 - 3)       = 2 - 4     = -2
  //  -1 + 0.5 * 1 * (0.5 - 0)     = -1 + 0.25 = -0.75
  //   0 + 0.5 * 0 * (7 - 1)       = 0
  //   4 + 0.5 * 16 * (2 - 2)      = 4
  const std::vector<float> g = {2, -1, 0, 4};
  const std::vector<float> now = {1, 0.5f, 7, 2};
  const std::vector<float> backup = {3, 0, 1, 2};
  std::vector<float> corrected(4);
  const float max_abs =
      CompensateDelay(0.5f, g, now.data(), backup.data(), absl::MakeSpan(corrected));
  EXPECT_EQ(corrected, (std::vector<float>{-2, -0.75f, 0, 4}));
  EXPECT_EQ(max_abs, 4.0f);
}

TEST(CompensateDelayTest, AdaptiveDividesLambdaByTheRootOfRmsPropsNextMeanSquare) {
  // lambda 0.5, rho 0.9; ms' = 0.9 ms + 0.1 g^2; g~ = g + 0.5 g^2 (now - backup) / sqrt(ms'):
  //   g 2, ms 0.1: ms' = 0.09 + 0.4 = 0.49, sqrt 0.7;  2 + 0.5 * 4 * (1 - 0) / 0.7 = 2 + 20/7
  //   g 1, ms 1:   ms' = 0.9 + 0.1 = 1;                 1 + 0.5 * 1 * (1 - 2) / 1   = 0.5
  //   g 0, ms 0:   ms' = 0: left as it is                                           = 0
  //   g -3, ms 0:  ms' = 0.9, no move                                               = -3
  const std::vector<float> g = {2, 1, 0, -3};
  const std::vector<float> now = {1, 1, 1, 1};
  const std::vector<float> backup = {0, 2, 5, 1};
  const std::vector<float> mean_square = {0.1f, 1, 0, 0};
  std::vector<float> corrected(4);
  const float max_abs = CompensateDelayAdaptive(
      0.5f, g, now.data(), backup.data(), mean_square.data(), 0.9f, absl::MakeSpan(corrected));
  EXPECT_NEAR(corrected[0], 2.0 + 20.0 / 7.0, 1e-6);
  EXPECT_FLOAT_EQ(corrected[1], 0.5f);
  EXPECT_EQ(corrected[2], 0.0f);
  EXPECT_EQ(corrected[3], -3.0f);
  EXPECT_FLOAT_EQ(max_abs, corrected[0]);
}

TEST(CompensateDelayTest, OnlyATrueOverflowIsInfinite) {
  const float huge = 1e30f;
  std::vector<float> corrected(3);
  // A huge gradient with no move stays as it is (huge^2 would overflow a float).
  const std::vector<float> g = {huge, 0, 1e20f};
  const std::vector<float> now = {1, 3e38f, 1};
  const std::vector<float> backup = {1, -3e38f, 0};
  float max_abs = CompensateDelay(0.04f, g, now.data(), backup.data(), absl::MakeSpan(corrected));
  EXPECT_EQ(corrected[0], huge);
  EXPECT_EQ(corrected[1], 0.0f);  // a zero gradient, even across a move beyond float's range
  EXPECT_TRUE(std::isinf(corrected[2]));  // 1e20 + 0.04 * 1e40 * 1
  EXPECT_TRUE(std::isinf(max_abs));
}

}  // namespace
}  // namespace mobilenet
