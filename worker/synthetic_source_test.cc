#include "worker/synthetic_source.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<SyntheticBatchSource> Make(const SyntheticConfig& config) {
  absl::StatusOr<std::unique_ptr<SyntheticBatchSource>> source =
      SyntheticBatchSource::Create(config);
  EXPECT_TRUE(source.ok()) << source.status();
  return std::move(source).value();
}

TEST(SyntheticBatchSourceTest, ImageNetShapeByDefault) {
  auto source = Make(SyntheticConfig());
  EXPECT_EQ(source->output_shape(), (ImageShape{224, 224, 3}));
  EXPECT_EQ(source->num_classes(), 1000);
  std::vector<float> images(2 * 224 * 224 * 3, -5.0f);
  std::vector<int> labels(2, -1);
  ASSERT_TRUE(source->NextBatch(2, images.data(), labels.data()).ok());
  double sum = 0;
  for (float v : images) {
    ASSERT_GE(v, -1.0f);
    ASSERT_LT(v, 1.0f);
    sum += v;
  }
  EXPECT_NEAR(sum / images.size(), 0.0, 0.01);
  for (int label : labels) {
    EXPECT_GE(label, 0);
    EXPECT_LT(label, 1000);
  }
}

TEST(SyntheticBatchSourceTest, DeterministicPerSeedAndEpochsRepeat) {
  SyntheticConfig config;
  config.shape = {5, 3, 2};  // 30 floats: not a multiple of 4
  config.num_classes = 4;
  config.examples_per_epoch = 6;
  config.seed = 3;
  auto a = Make(config);
  auto b = Make(config);
  std::vector<float> images_a(12 * 30), images_b(12 * 30);
  std::vector<int> labels_a(12), labels_b(12);
  ASSERT_TRUE(a->NextBatch(12, images_a.data(), labels_a.data()).ok());
  for (int i = 0; i < 12; i += 4) {
    ASSERT_TRUE(b->NextBatch(4, images_b.data() + i * 30, labels_b.data() + i).ok());
  }
  EXPECT_EQ(images_a, images_b);
  EXPECT_EQ(labels_a, labels_b);
  EXPECT_EQ(a->epoch(), 2);
  EXPECT_EQ(a->position(), 0);
  // The second epoch repeats the first; examples within an epoch differ.
  EXPECT_EQ(std::vector<float>(images_a.begin(), images_a.begin() + 180),
            std::vector<float>(images_a.begin() + 180, images_a.end()));
  EXPECT_NE(std::vector<float>(images_a.begin(), images_a.begin() + 30),
            std::vector<float>(images_a.begin() + 30, images_a.begin() + 60));

  config.seed = 4;
  auto c = Make(config);
  std::vector<float> images_c(30);
  int label_c;
  ASSERT_TRUE(c->NextBatch(1, images_c.data(), &label_c).ok());
  EXPECT_NE(images_c, std::vector<float>(images_a.begin(), images_a.begin() + 30));
}

TEST(SyntheticBatchSourceTest, RejectsBadConfigAndArguments) {
  SyntheticConfig config;
  config.shape = {0, 4, 3};
  EXPECT_THAT(SyntheticBatchSource::Create(config).status().message(),
              HasSubstr("shape 0x4x3"));
  config = SyntheticConfig();
  config.num_classes = 0;
  EXPECT_FALSE(SyntheticBatchSource::Create(config).ok());
  config = SyntheticConfig();
  config.examples_per_epoch = 0;
  EXPECT_FALSE(SyntheticBatchSource::Create(config).ok());
  auto source = Make(SyntheticConfig());
  int label;
  EXPECT_FALSE(source->NextBatch(-1, nullptr, &label).ok());
  EXPECT_FALSE(source->NextBatch(1, nullptr, &label).ok());
}

}  // namespace
}  // namespace mobilenet
