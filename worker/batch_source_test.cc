#include "worker/batch_source.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// n constant 4x4 images; image i has every pixel equal to i and label i % 10.
std::shared_ptr<const Dataset> NumberedDataset(int n) {
  std::vector<uint8_t> pixels;
  std::vector<int> labels;
  for (int i = 0; i < n; ++i) {
    pixels.insert(pixels.end(), 16, static_cast<uint8_t>(i));
    labels.push_back(i % 10);
  }
  absl::StatusOr<Dataset> dataset = Dataset::Create({4, 4, 1}, 10, pixels, labels);
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  return std::make_shared<const Dataset>(*std::move(dataset));
}

PreprocessingConfig RawValues() {
  PreprocessingConfig config;
  config.mean = {0.0f};
  config.stddev = {1.0f / 255.0f};
  return config;
}

std::unique_ptr<ShardBatchSource> MakeSource(std::shared_ptr<const Dataset> dataset, int shard,
                                             int num_shards, uint64_t seed,
                                             const PreprocessingConfig& config) {
  absl::StatusOr<DataShard> data_shard =
      DataShard::Create(dataset->size(), shard, num_shards, seed);
  EXPECT_TRUE(data_shard.ok()) << data_shard.status();
  absl::StatusOr<std::unique_ptr<ShardBatchSource>> source =
      ShardBatchSource::Create(std::move(dataset), *std::move(data_shard), config);
  EXPECT_TRUE(source.ok()) << source.status();
  return std::move(source).value();
}

// Draws `count` examples in batches of `batch` and returns the example numbers (read back
// from the constant images) in order.
std::vector<int> Draw(BatchSource* source, int count, int batch) {
  const int64_t floats = source->output_shape().elements();
  std::vector<float> images(batch * floats);
  std::vector<int> labels(batch);
  std::vector<int> examples;
  while (static_cast<int>(examples.size()) < count) {
    const int b = std::min(batch, count - static_cast<int>(examples.size()));
    EXPECT_TRUE(source->NextBatch(b, images.data(), labels.data()).ok());
    for (int i = 0; i < b; ++i) {
      const int example = static_cast<int>(std::lround(images[i * floats]));
      EXPECT_EQ(labels[i], example % 10);
      examples.push_back(example);
    }
  }
  return examples;
}

TEST(ShardBatchSourceTest, EachEpochVisitsTheShardOnce) {
  auto dataset = NumberedDataset(50);
  auto source = MakeSource(dataset, 1, 3, 7, RawValues());
  EXPECT_EQ(source->examples_per_epoch(), source->shard().size());
  EXPECT_EQ(source->output_shape(), (ImageShape{4, 4, 1}));
  EXPECT_EQ(source->num_classes(), 10);
  const int size = source->shard().size();
  std::vector<int> first = Draw(source.get(), size, 4);
  EXPECT_EQ(source->epoch(), 1);
  EXPECT_EQ(source->position(), 0);
  std::vector<int> second = Draw(source.get(), size, 5);
  EXPECT_EQ(source->epoch(), 2);
  EXPECT_NE(first, second);
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  EXPECT_EQ(first, source->shard().members());
  EXPECT_EQ(second, source->shard().members());
}

TEST(ShardBatchSourceTest, TracksEpochAndPositionAcrossBoundaries) {
  auto source = MakeSource(NumberedDataset(10), 0, 1, 0, RawValues());
  std::vector<float> images(7 * 16);
  std::vector<int> labels(7);
  ASSERT_TRUE(source->NextBatch(7, images.data(), labels.data()).ok());
  EXPECT_EQ(source->epoch(), 0);
  EXPECT_EQ(source->position(), 7);
  ASSERT_TRUE(source->NextBatch(7, images.data(), labels.data()).ok());  // crosses the end
  EXPECT_EQ(source->epoch(), 1);
  EXPECT_EQ(source->position(), 4);
  EXPECT_EQ(source->examples_seen(), 14);
}

TEST(ShardBatchSourceTest, StreamDependsOnSeedNotOnBatchSize) {
  auto dataset = NumberedDataset(30);
  PreprocessingConfig config = RawValues();
  config.random_flip = true;
  config.crop_padding = 1;
  auto a = MakeSource(dataset, 0, 2, 11, config);
  auto b = MakeSource(dataset, 0, 2, 11, config);
  const int64_t floats = 16;
  std::vector<float> images_a(45 * floats), images_b(45 * floats);
  std::vector<int> labels_a(45), labels_b(45);
  ASSERT_TRUE(a->NextBatch(45, images_a.data(), labels_a.data()).ok());
  for (int done = 0; done < 45; done += 9) {
    ASSERT_TRUE(b->NextBatch(9, images_b.data() + done * floats, labels_b.data() + done).ok());
  }
  EXPECT_EQ(labels_a, labels_b);
  EXPECT_EQ(images_a, images_b);
  // Augmentation took effect: some images have zero padding rows or columns.
  EXPECT_GT(std::count(images_a.begin(), images_a.end(), 0.0f), 45);
}

TEST(ShardBatchSourceTest, DifferentSeedsGiveDifferentOrders) {
  auto dataset = NumberedDataset(40);
  auto a = MakeSource(dataset, 0, 1, 1, RawValues());
  auto b = MakeSource(dataset, 0, 1, 2, RawValues());
  EXPECT_NE(Draw(a.get(), 40, 8), Draw(b.get(), 40, 8));
}

TEST(ShardBatchSourceTest, WorkersOfOneRunSeeDisjointExamples) {
  auto dataset = NumberedDataset(20);
  std::vector<int> all;
  for (int s = 0; s < 3; ++s) {
    auto source = MakeSource(dataset, s, 3, 4, RawValues());
    std::vector<int> seen = Draw(source.get(), source->examples_per_epoch(), 3);
    all.insert(all.end(), seen.begin(), seen.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int> expected(20);
  for (int i = 0; i < 20; ++i) expected[i] = i;
  EXPECT_EQ(all, expected);
}

TEST(ShardBatchSourceTest, ResizesToTheConfiguredResolution) {
  PreprocessingConfig config = RawValues();
  config.output_height = 8;
  config.output_width = 8;
  config.output_channels = 3;
  auto source = MakeSource(NumberedDataset(5), 0, 1, 0, config);
  EXPECT_EQ(source->output_shape(), (ImageShape{8, 8, 3}));
  std::vector<float> images(2 * 8 * 8 * 3);
  std::vector<int> labels(2);
  ASSERT_TRUE(source->NextBatch(2, images.data(), labels.data()).ok());
  for (int b = 0; b < 2; ++b) {
    for (int i = 0; i < 8 * 8 * 3; ++i) {
      ASSERT_NEAR(images[b * 192 + i], labels[b], 1e-3);  // constant images stay constant
    }
  }
}

TEST(ShardBatchSourceTest, RejectsBadArguments) {
  auto dataset = NumberedDataset(10);
  auto source = MakeSource(dataset, 0, 1, 0, RawValues());
  std::vector<float> images(16);
  int label;
  EXPECT_THAT(source->NextBatch(0, images.data(), &label).message(),
              HasSubstr("batch_size must be >= 1, got 0"));
  EXPECT_FALSE(source->NextBatch(1, nullptr, &label).ok());
  EXPECT_EQ(source->position(), 0);

  absl::StatusOr<DataShard> wrong = DataShard::Create(11, 0, 1, 0);
  ASSERT_TRUE(wrong.ok());
  auto created = ShardBatchSource::Create(dataset, *wrong, RawValues());
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(),
              HasSubstr("shard made for 11 examples, but the data set has 10"));
  PreprocessingConfig bad;
  bad.stddev = {-1.0f};
  absl::StatusOr<DataShard> shard = DataShard::Whole(10, 0);
  ASSERT_TRUE(shard.ok());
  EXPECT_FALSE(ShardBatchSource::Create(dataset, *shard, bad).ok());
}

}  // namespace
}  // namespace mobilenet
