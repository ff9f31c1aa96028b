#include "worker/image_evaluation_reader.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Image i is 1x1x1 with pixel value i and label i % 3; image `bad_index` does not decode.
class CountingSource : public ImageSource {
 public:
  CountingSource(int size, int bad_index) : size_(size), bad_index_(bad_index) {}
  int size() const override { return size_; }
  int num_classes() const override { return 3; }
  const std::vector<std::string>& class_names() const override { return names_; }
  int label(int index) const override { return index % 3; }
  int channels() const override { return 1; }
  std::string Describe(int index) const override { return absl::StrCat("img", index, ".png"); }
  absl::StatusOr<DecodedImage> Load(int index) const override {
    if (index == bad_index_) return absl::DataLossError("truncated PNG");
    return DecodedImage{1, 1, 1, {static_cast<uint8_t>(index)}};
  }

 private:
  int size_;
  int bad_index_;
  std::vector<std::string> names_{"a", "b", "c"};
};

// Writes the pixel value and records the seed it was called with.
PreprocessFunction CopyPixel(std::vector<uint64_t>* seeds) {
  return [seeds](const DecodedImage& image, uint64_t seed, float* out) {
    seeds->push_back(seed);
    out[0] = image.pixels[0];
    return absl::OkStatus();
  };
}

constexpr ImageShape kShape{1, 1, 1};

TEST(ImageEvaluationReaderTest, ReadsEveryImageOnceInOrderWithSeedZeroThenResets) {
  std::vector<uint64_t> seeds;
  auto reader = ImageEvaluationReader::Create(std::make_shared<CountingSource>(5, -1), kShape,
                                              CopyPixel(&seeds));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->size(), 5);
  EXPECT_EQ((*reader)->num_classes(), 3);
  float images[4];
  int labels[4];
  ASSERT_EQ(*(*reader)->NextBatch(4, images, labels), 4);
  EXPECT_THAT(images, ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(labels, ElementsAre(0, 1, 2, 0));
  ASSERT_EQ(*(*reader)->NextBatch(4, images, labels), 1);
  EXPECT_EQ(images[0], 4);
  EXPECT_EQ(labels[0], 1);
  EXPECT_EQ(*(*reader)->NextBatch(4, images, labels), 0);  // the pass is over
  EXPECT_THAT(seeds, ElementsAre(0, 0, 0, 0, 0));

  (*reader)->Reset();
  ASSERT_EQ(*(*reader)->NextBatch(2, images, labels), 2);
  EXPECT_EQ(images[0], 0);
  EXPECT_EQ(images[1], 1);
}

TEST(ImageEvaluationReaderTest, MaxExamplesTakesTheFirstImages) {
  std::vector<uint64_t> seeds;
  auto reader = ImageEvaluationReader::Create(std::make_shared<CountingSource>(10, -1), kShape,
                                              CopyPixel(&seeds), /*max_examples=*/3);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->size(), 3);
  float images[8];
  int labels[8];
  EXPECT_EQ(*(*reader)->NextBatch(8, images, labels), 3);
  EXPECT_EQ(*(*reader)->NextBatch(8, images, labels), 0);

  auto all = ImageEvaluationReader::Create(std::make_shared<CountingSource>(4, -1), kShape,
                                           CopyPixel(&seeds), /*max_examples=*/100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)->size(), 4);
}

TEST(ImageEvaluationReaderTest, ABadImageIsAnErrorNamingIt) {
  std::vector<uint64_t> seeds;
  auto reader = ImageEvaluationReader::Create(std::make_shared<CountingSource>(4, 2), kShape,
                                              CopyPixel(&seeds));
  ASSERT_TRUE(reader.ok());
  float images[4];
  int labels[4];
  absl::StatusOr<int> batch = (*reader)->NextBatch(4, images, labels);
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(batch.status().message(), HasSubstr("img2.png"));
  EXPECT_THAT(batch.status().message(), HasSubstr("truncated PNG"));
}

TEST(ImageEvaluationReaderTest, RefusesBadArguments) {
  std::vector<uint64_t> seeds;
  EXPECT_EQ(ImageEvaluationReader::Create(nullptr, kShape, CopyPixel(&seeds)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ImageEvaluationReader::Create(std::make_shared<CountingSource>(2, -1), {0, 1, 1},
                                          CopyPixel(&seeds))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ImageEvaluationReader::Create(std::make_shared<CountingSource>(2, -1), kShape,
                                          CopyPixel(&seeds), -1)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
