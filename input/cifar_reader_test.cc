#include "input/cifar_reader.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/image_folder_testing.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_image_folder::FreshDir;
using testing_image_folder::WriteFile;

// A record whose pixel (y, x) of channel c is (y + x + 50 * c) % 256.
std::string Record(std::initializer_list<int> label_bytes) {
  std::string record;
  for (int b : label_bytes) record.push_back(static_cast<char>(b));
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 32; ++x) record.push_back(static_cast<char>((y + x + 50 * c) % 256));
    }
  }
  return record;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

void WriteCifar10(const std::string& dir) {
  WriteFile(dir + "/data_batch_1.bin", Record({3}) + Record({9}));
  for (int i = 2; i <= 5; ++i) WriteFile(dir + "/data_batch_" + std::to_string(i) + ".bin", "");
  WriteFile(dir + "/data_batch_5.bin", Record({0}));
  WriteFile(dir + "/test_batch.bin", Record({7}));
}

TEST(CifarReaderTest, ReadsCifar10PlanesIntoHwc) {
  const std::string dir = FreshDir("cifar10");
  WriteCifar10(dir);
  ASSERT_EQ(*DetectCifarVariant(dir), CifarVariant::kCifar10);
  absl::StatusOr<LabeledImages> train = ReadCifar(dir, "train");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->height, 32);
  EXPECT_EQ(train->width, 32);
  EXPECT_EQ(train->channels, 3);
  EXPECT_THAT(train->labels, ElementsAre(3, 9, 0));
  ASSERT_EQ(train->pixels.size(), 3u * 3072);
  const uint8_t* image = train->image(1);
  const int y = 5, x = 7;
  EXPECT_EQ(image[(y * 32 + x) * 3 + 0], 12);
  EXPECT_EQ(image[(y * 32 + x) * 3 + 1], 62);
  EXPECT_EQ(image[(y * 32 + x) * 3 + 2], 112);
  EXPECT_THAT(train->class_names, ElementsAre("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"));
  EXPECT_THAT(ReadCifar(dir, "test")->labels, ElementsAre(7));

  WriteFile(dir + "/batches.meta.txt",
            "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
  EXPECT_EQ(ReadCifar(dir, "test")->class_names[9], "truck");
  WriteFile(dir + "/batches.meta.txt", "airplane\n");
  const absl::Status names = ReadCifar(dir, "test").status();
  EXPECT_EQ(names.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(names), HasSubstr("batches.meta.txt: expected 10 class names"));
}

TEST(CifarReaderTest, ReadsCifar100FineLabels) {
  const std::string dir = FreshDir("cifar100");
  WriteFile(dir + "/train.bin", Record({19, 99}) + Record({0, 42}));
  WriteFile(dir + "/test.bin", Record({1, 5}));
  ASSERT_EQ(*DetectCifarVariant(dir), CifarVariant::kCifar100);
  absl::StatusOr<LabeledImages> train = ReadCifar(dir, "train");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_THAT(train->labels, ElementsAre(99, 42));
  EXPECT_EQ(train->class_names.size(), 100u);
  EXPECT_EQ(train->image(0)[1], 50);  // pixel (0, 0), green
}

TEST(CifarReaderTest, ErrorsNameTheFileAndWhatIsWrong) {
  const std::string dir = FreshDir("cifar_errors");
  absl::Status status = ReadCifar(dir, "train").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("neither " + dir + "/data_batch_1.bin"));

  WriteCifar10(dir);
  WriteFile(dir + "/test_batch.bin", Record({7}) + "xyz");
  status = ReadCifar(dir, "test").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(status), HasSubstr(dir + "/test_batch.bin: 3076 bytes is not a whole "
                                               "number of 3073-byte records (1 records and 3"));

  WriteFile(dir + "/test_batch.bin", Record({7}) + Record({10}));
  status = ReadCifar(dir, "test").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(status),
              HasSubstr(dir + "/test_batch.bin: record 1 has label 10, outside [0, 10)"));

  std::filesystem::remove(dir + "/data_batch_3.bin");
  status = ReadCifar(dir, "train").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr(dir + "/data_batch_3.bin"));

  WriteFile(dir + "/train.bin", "");
  EXPECT_EQ(DetectCifarVariant(dir).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCifar(dir, "val").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mobilenet
