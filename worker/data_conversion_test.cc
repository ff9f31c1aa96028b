#include "worker/data_conversion.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "input/cifar_reader.h"
#include "input/dataset_writer.h"
#include "input/image_folder_source.h"
#include "worker/idx_reader.h"

namespace mobilenet {
namespace {

constexpr int kPerClass = 3;

class DataConversionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(std::string(kDefaultFashionMnistDir) +
                                 "/t10k-images-idx3-ubyte.gz")) {
      GTEST_SKIP() << "Fashion-MNIST is not installed in " << kDefaultFashionMnistDir;
    }
    out_ = ::testing::TempDir() + "/data_conversion_test_" + std::to_string(getpid());
    std::filesystem::remove_all(out_);
    absl::StatusOr<Dataset> test = LoadFashionMnist(kDefaultFashionMnistDir, DatasetSplit::kTest);
    ASSERT_TRUE(test.ok()) << test.status();
    expected_ = FirstPerClass(ToLabeledImages(*test, FashionMnistFolderNames()), kPerClass);
  }
  void TearDown() override { std::filesystem::remove_all(out_); }

  // The expected test image that the image folder numbers `index` (by class, then in
  // file order).
  int ExpectedIndex(int index) const {
    const int label = index / kPerClass;
    int seen = 0;
    for (int i = 0; i < expected_.size(); ++i) {
      if (expected_.labels[i] == label && seen++ == index % kPerClass) return i;
    }
    return -1;
  }

  std::string out_;
  LabeledImages expected_;
};

TEST_F(DataConversionTest, PngFolderHoldsTheIdxPixelsExactly) {
  absl::StatusOr<ConversionCounts> counts = ConvertFashionMnist(
      kDefaultFashionMnistDir, ConversionTarget::kImageFolderPng, out_, kPerClass);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->train, 10 * kPerClass);
  EXPECT_EQ(counts->test, 10 * kPerClass);
  absl::StatusOr<std::unique_ptr<ImageFolderSource>> source =
      ImageFolderSource::Open(out_, "test", 1);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->class_names(), FashionMnistFolderNames());
  ASSERT_EQ((*source)->size(), 10 * kPerClass);
  for (int i = 0; i < (*source)->size(); ++i) {
    const int e = ExpectedIndex(i);
    EXPECT_EQ((*source)->label(i), expected_.labels[e]);
    absl::StatusOr<DecodedImage> image = (*source)->Load(i);
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->height, 28);
    EXPECT_EQ(image->pixels, std::vector<uint8_t>(expected_.image(e), expected_.image(e) + 28 * 28))
        << (*source)->Describe(i);
  }
}

TEST_F(DataConversionTest, JpegFolderIsCloseToTheIdxPixels) {
  ASSERT_TRUE(ConvertFashionMnist(kDefaultFashionMnistDir, ConversionTarget::kImageFolderJpeg, out_,
                                  kPerClass)
                  .ok());
  const auto source = *ImageFolderSource::Open(out_, "test", 1);
  double total_error = 0;
  for (int i = 0; i < source->size(); ++i) {
    const DecodedImage image = *source->Load(i);
    const uint8_t* expected = expected_.image(ExpectedIndex(i));
    for (int p = 0; p < 28 * 28; ++p) total_error += std::abs(image.pixels[p] - expected[p]);
  }
  EXPECT_LT(total_error / (source->size() * 28 * 28), 3.0);  // mean absolute error at q95
}

TEST_F(DataConversionTest, CifarPadsTo32AndReadsBackAsADataset) {
  ASSERT_TRUE(
      ConvertFashionMnist(kDefaultFashionMnistDir, ConversionTarget::kCifar, out_, kPerClass).ok());
  absl::StatusOr<LabeledImages> cifar = ReadCifar(out_, "test");
  ASSERT_TRUE(cifar.ok()) << cifar.status();
  EXPECT_EQ(cifar->labels, expected_.labels);
  EXPECT_EQ(cifar->class_names, FashionMnistFolderNames());
  for (int i = 0; i < cifar->size(); ++i) {
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x) {
        ASSERT_EQ(cifar->image(i)[((y + 2) * 32 + x + 2) * 3 + 1], expected_.image(i)[y * 28 + x]);
      }
    }
  }
  absl::StatusOr<Dataset> dataset = ToDataset(*std::move(cifar));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->shape(), (ImageShape{32, 32, 3}));
  EXPECT_EQ(dataset->num_classes(), 10);
}

TEST(DataConversionTargetTest, ParsesTargets) {
  EXPECT_EQ(*ParseConversionTarget("cifar"), ConversionTarget::kCifar);
  EXPECT_EQ(ParseConversionTarget("png").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
