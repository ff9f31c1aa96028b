#include "worker/idx_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

void AppendBigEndian(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

std::string ImagesFile(int count, int rows, int cols, const std::vector<uint8_t>& pixels) {
  std::string bytes;
  AppendBigEndian(kIdxImagesMagic, &bytes);
  AppendBigEndian(count, &bytes);
  AppendBigEndian(rows, &bytes);
  AppendBigEndian(cols, &bytes);
  bytes.append(pixels.begin(), pixels.end());
  return bytes;
}

std::string LabelsFile(const std::vector<uint8_t>& labels) {
  std::string bytes;
  AppendBigEndian(kIdxLabelsMagic, &bytes);
  AppendBigEndian(labels.size(), &bytes);
  bytes.append(labels.begin(), labels.end());
  return bytes;
}

std::string Gzip(const std::string& raw) {
  std::vector<Bytef> out(compressBound(raw.size()) + 64);
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  stream.avail_in = raw.size();
  stream.next_out = out.data();
  stream.avail_out = out.size();
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  const size_t size = stream.total_out;
  deflateEnd(&stream);
  return std::string(reinterpret_cast<const char*>(out.data()), size);
}

class IdxReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "idx_reader_test_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // Three 2x3 images with pixel value 10 * image + position, labels 2, 0, 9.
  static std::vector<uint8_t> Pixels() {
    std::vector<uint8_t> pixels;
    for (int i = 0; i < 3; ++i) {
      for (int p = 0; p < 6; ++p) pixels.push_back(10 * i + p);
    }
    return pixels;
  }

  std::string dir_;
};

TEST_F(IdxReaderTest, ReadsRawAndGzippedImages) {
  const std::string raw = ImagesFile(3, 2, 3, Pixels());
  for (const std::string& path : {Write("raw-images", raw), Write("gz-images.gz", Gzip(raw))}) {
    absl::StatusOr<IdxImages> images = ReadIdxImages(path);
    ASSERT_TRUE(images.ok()) << images.status();
    EXPECT_EQ(images->count, 3);
    EXPECT_EQ(images->rows, 2);
    EXPECT_EQ(images->cols, 3);
    EXPECT_EQ(images->pixels, Pixels());
  }
}

TEST_F(IdxReaderTest, DetectsCompressionByContentNotName) {
  const std::string raw = ImagesFile(3, 2, 3, Pixels());
  absl::StatusOr<IdxImages> a = ReadIdxImages(Write("looks-compressed.gz", raw));
  absl::StatusOr<IdxImages> b = ReadIdxImages(Write("looks-raw", Gzip(raw)));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->pixels, Pixels());
  EXPECT_EQ(b->pixels, Pixels());
}

TEST_F(IdxReaderTest, JoinsConcatenatedGzipMembers) {
  const std::string raw = ImagesFile(3, 2, 3, Pixels());
  const std::string path = Write("multi.gz", Gzip(raw.substr(0, 20)) + Gzip(raw.substr(20)));
  absl::StatusOr<std::string> bytes = ReadMaybeGzippedFile(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, raw);
}

TEST_F(IdxReaderTest, LoadsDatasetFromImagesAndLabels) {
  const std::string images = Write("i.gz", Gzip(ImagesFile(3, 2, 3, Pixels())));
  const std::string labels = Write("l", LabelsFile({2, 0, 9}));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels, 10);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 3);
  EXPECT_EQ(dataset->shape(), (ImageShape{2, 3, 1}));
  EXPECT_EQ(dataset->num_classes(), 10);
  EXPECT_EQ(dataset->labels(), (std::vector<int>{2, 0, 9}));
  EXPECT_EQ(dataset->image(2)[4], 24);
}

TEST_F(IdxReaderTest, MissingFileIsNotFoundAndNamesThePath) {
  const std::string path = dir_ + "/no-such-file.gz";
  absl::StatusOr<IdxImages> images = ReadIdxImages(path);
  ASSERT_FALSE(images.ok());
  EXPECT_EQ(images.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(images.status().message(), HasSubstr(path));
}

TEST_F(IdxReaderTest, WrongMagicNamesExpectedAndActual) {
  const std::string path = Write("train-images-idx3-ubyte.gz", Gzip(LabelsFile({1, 2})));
  absl::StatusOr<IdxImages> images = ReadIdxImages(path);
  ASSERT_FALSE(images.ok());
  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().message(),
              HasSubstr("train-images-idx3-ubyte.gz: magic 0x00000803 expected, got 0x00000801"));
  absl::StatusOr<std::vector<uint8_t>> labels =
      ReadIdxLabels(Write("labels", ImagesFile(3, 2, 3, Pixels())));
  ASSERT_FALSE(labels.ok());
  EXPECT_THAT(labels.status().message(), HasSubstr("magic 0x00000801 expected, got 0x00000803"));
}

TEST_F(IdxReaderTest, TruncatedPixelDataSaysHowMuchIsMissing) {
  std::vector<uint8_t> pixels = Pixels();
  pixels.resize(10);
  const std::string path = Write("short", ImagesFile(3, 2, 3, pixels));
  absl::StatusOr<IdxImages> images = ReadIdxImages(path);
  ASSERT_FALSE(images.ok());
  EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(images.status().message(),
              HasSubstr(path + ": expected 18 bytes of pixel data, got 10"));
}

TEST_F(IdxReaderTest, TrailingBytesAreAnError) {
  std::vector<uint8_t> pixels = Pixels();
  pixels.push_back(0);
  absl::StatusOr<IdxImages> images = ReadIdxImages(Write("long", ImagesFile(3, 2, 3, pixels)));
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(), HasSubstr("expected 18 bytes of pixel data, got 19"));
  std::string labels = LabelsFile({1, 2, 3});
  labels.pop_back();
  absl::StatusOr<std::vector<uint8_t>> read = ReadIdxLabels(Write("labels", labels));
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("expected 3 bytes of label data, got 2"));
}

TEST_F(IdxReaderTest, ShortHeaderAndHugeDimensionsAreErrors) {
  std::string header = ImagesFile(3, 2, 3, {}).substr(0, 10);
  absl::StatusOr<IdxImages> images = ReadIdxImages(Write("header", header));
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(), HasSubstr("file is 10 bytes, shorter than its 16-byte"));
  images = ReadIdxImages(Write("empty", ""));
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(), HasSubstr("file is 0 bytes"));
  // (2^31 - 1)^3 bytes would overflow 64 bits.
  const uint32_t big = 0x7fffffff;
  images = ReadIdxImages(Write("huge", ImagesFile(big, big, big, Pixels())));
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(),
              HasSubstr("expected 2147483647 x 2147483647 x 2147483647 bytes of pixel data"));
  images = ReadIdxImages(Write("negative", ImagesFile(0x80000000u, 2, 3, Pixels())));
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(), HasSubstr("dimension 0 is 2147483648"));
  images = ReadIdxImages(Write("zero", ImagesFile(0, 0, 3, {})));
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(), HasSubstr("image size 0x3"));
}

TEST_F(IdxReaderTest, MismatchedCountsNameBothFiles) {
  const std::string images = Write("imgs", ImagesFile(3, 2, 3, Pixels()));
  const std::string labels = Write("lbls", LabelsFile({1, 2}));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels, 10);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(),
              HasSubstr(images + " has 3 images but " + labels + " has 2 labels"));
}

TEST_F(IdxReaderTest, LabelOutOfRangeNamesFileIndexAndValue) {
  const std::string images = Write("imgs", ImagesFile(3, 2, 3, Pixels()));
  const std::string labels = Write("lbls", LabelsFile({1, 10, 2}));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels, 10);
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(),
              HasSubstr(labels + ": label 10 at index 1 outside [0, 10)"));
}

TEST_F(IdxReaderTest, CorruptGzipStreamIsDataLoss) {
  std::vector<uint8_t> pixels(3000);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7919 % 251);
  std::string gz = Gzip(ImagesFile(30, 10, 10, pixels));
  // A damaged deflate block, and separately a damaged header (unknown method).
  std::string damaged_body = gz;
  for (size_t i = gz.size() / 3; i < gz.size() / 3 + 16; ++i) damaged_body[i] ^= 0x5a;
  std::string damaged_method = gz;
  damaged_method[2] = 7;
  for (const std::string& bytes : {damaged_body, damaged_method}) {
    const std::string path = Write("corrupt.gz", bytes);
    absl::StatusOr<IdxImages> images = ReadIdxImages(path);
    ASSERT_FALSE(images.ok());
    EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(images.status().message(), HasSubstr(path + ": corrupt gzip stream"));
  }
}

TEST_F(IdxReaderTest, TruncatedGzipStreamIsDataLoss) {
  const std::string gz = Gzip(ImagesFile(3, 2, 3, Pixels()));
  for (size_t keep : {size_t{2}, size_t{12}, gz.size() / 2, gz.size() - 1}) {
    const std::string path = Write("truncated.gz", gz.substr(0, keep));
    absl::StatusOr<IdxImages> images = ReadIdxImages(path);
    ASSERT_FALSE(images.ok()) << keep;
    EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(images.status().message(), HasSubstr("gzip stream ends early")) << keep;
  }
}

TEST_F(IdxReaderTest, GarbageAfterGzipStreamIsAnError) {
  const std::string path = Write("tail.gz", Gzip(ImagesFile(3, 2, 3, Pixels())) + "xyz");
  absl::StatusOr<IdxImages> images = ReadIdxImages(path);
  ASSERT_FALSE(images.ok());
  EXPECT_THAT(images.status().message(), HasSubstr("3 unexpected bytes after the gzip stream"));
}

TEST_F(IdxReaderTest, LoadFashionMnistFindsFilesInDirectory) {
  Write("t10k-images-idx3-ubyte.gz", Gzip(ImagesFile(3, 2, 3, Pixels())));
  Write("t10k-labels-idx1-ubyte", LabelsFile({3, 1, 4}));  // uncompressed fallback
  absl::StatusOr<Dataset> test = LoadFashionMnist(dir_, DatasetSplit::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->labels(), (std::vector<int>{3, 1, 4}));
  absl::StatusOr<Dataset> train = LoadFashionMnist(dir_, DatasetSplit::kTrain);
  ASSERT_FALSE(train.ok());
  EXPECT_EQ(train.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(train.status().message(), HasSubstr("train-images-idx3-ubyte.gz"));
}

TEST(RealFashionMnistTest, LoadsBothSplits) {
  const std::string dir = kDefaultFashionMnistDir;
  if (access((dir + "/t10k-labels-idx1-ubyte.gz").c_str(), R_OK) != 0 ||
      access((dir + "/train-labels-idx1-ubyte.gz").c_str(), R_OK) != 0) {
    GTEST_SKIP() << "Fashion-MNIST not found in " << dir;
  }
  for (auto [split, expected] : {std::pair{DatasetSplit::kTrain, 60000},
                                 std::pair{DatasetSplit::kTest, 10000}}) {
    absl::StatusOr<Dataset> dataset = LoadFashionMnist(dir, split);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    EXPECT_EQ(dataset->size(), expected);
    EXPECT_EQ(dataset->shape(), (ImageShape{28, 28, 1}));
    EXPECT_EQ(dataset->num_classes(), 10);
    std::vector<int> per_class(10, 0);
    for (int label : dataset->labels()) ++per_class[label];
    for (int count : per_class) EXPECT_EQ(count, expected / 10);  // balanced splits
    double sum = 0;
    for (uint8_t p : dataset->pixels()) sum += p;
    EXPECT_NEAR(sum / dataset->pixels().size() / 255.0, 0.286, 0.01);
  }
}

}  // namespace
}  // namespace mobilenet
