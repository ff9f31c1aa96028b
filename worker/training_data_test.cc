#include "worker/training_data.h"

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_contents.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/dataset_writer.h"
#include "input/image_folder_testing.h"
#include "input/inception_preprocessing.h"
#include "input/labeled_images.h"
#include "worker/preprocessing.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using testing_image_folder::FreshDir;
using testing_image_folder::WriteFile;

// `per_class` images of each of `classes` classes, 8x8 of `channels`, each image a
// different uniform gray so that images can be told apart.
LabeledImages TinyImages(int classes, int per_class, int channels) {
  LabeledImages images;
  images.height = images.width = 8;
  images.channels = channels;
  for (int c = 0; c < classes; ++c) images.class_names.push_back(absl::StrCat("class_", c));
  for (int c = 0; c < classes; ++c) {
    for (int i = 0; i < per_class; ++i) {
      images.labels.push_back(c);
      images.pixels.insert(images.pixels.end(), images.image_bytes(),
                           static_cast<uint8_t>(20 * c + i));
    }
  }
  return images;
}

std::string WriteFolder(const std::string& name, int classes, int train_per_class,
                        int test_per_class) {
  const std::string dir = FreshDir(name);
  EXPECT_TRUE(
      WriteImageFolder(TinyImages(classes, train_per_class, 1), dir, "train", ImageFileFormat::kPng)
          .ok());
  EXPECT_TRUE(
      WriteImageFolder(TinyImages(classes, test_per_class, 1), dir, "test", ImageFileFormat::kPng)
          .ok());
  return dir;
}

TrainingDataOptions Options(const std::string& dir) {
  TrainingDataOptions o;
  o.data_dir = dir;
  o.resolution = 8;
  o.channels = 1;
  o.batch_size = 4;
  o.prefetch_batches = 2;
  return o;
}

TEST(TrainingDataFormatTest, ParsesNames) {
  EXPECT_EQ(*ParseTrainingDataFormat("idx"), TrainingDataFormat::kIdx);
  EXPECT_EQ(*ParseTrainingDataFormat("cifar"), TrainingDataFormat::kCifar);
  EXPECT_EQ(*ParseTrainingDataFormat("image_folder"), TrainingDataFormat::kImageFolder);
  EXPECT_EQ(*ParseTrainingDataFormat("auto"), TrainingDataFormat::kAuto);
  EXPECT_THAT(ParseTrainingDataFormat("jpeg").status().message(), HasSubstr("image_folder"));
  EXPECT_EQ(*ParsePreprocessingKind("pad_crop"), PreprocessingKind::kPadCrop);
  EXPECT_FALSE(ParsePreprocessingKind("random").ok());
}

TEST(TrainingDataOptionsTest, OutOfRangeOptionsAreRefusedNamingTheFlag) {
  TrainingDataOptions options;
  options.resolution = 28;
  options.channels = 1;
  EXPECT_TRUE(CheckTrainingDataOptions(options).ok()) << CheckTrainingDataOptions(options);
  options.num_classes = -1;
  EXPECT_THAT(CheckTrainingDataOptions(options).message(),
              HasSubstr("--classes must be >= 0, got -1"));
  options.num_classes = 0;
  options.crop_padding = -2;
  EXPECT_THAT(CheckTrainingDataOptions(options).message(),
              HasSubstr("--crop_padding must be >= 0, got -2"));
}

TEST(TrainingDataOptionsTest, DefaultNormalizationFollowsTheChannels) {
  EXPECT_EQ(DefaultMean(3), ImageNetMean());
  EXPECT_EQ(DefaultStddev(3), ImageNetStddev());
  EXPECT_EQ(DefaultMean(1), std::vector<float>{kFashionMnistMean});
  EXPECT_EQ(DefaultStddev(1), std::vector<float>{kFashionMnistStd});
}

TEST(SplitTest, OnlyTrainAndTestAreSplits) {
  EXPECT_TRUE(CheckSplit("CIFAR split", "train").ok());
  EXPECT_TRUE(CheckSplit("CIFAR split", "test").ok());
  const absl::Status val = CheckSplit("image folder split", "val");
  EXPECT_EQ(val.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(val.message(), HasSubstr("image folder split must be \"train\" or \"test\", "
                                       "got \"val\""));
}

TEST(TrainingDataFormatTest, DetectsEachFormat) {
  const std::string empty = FreshDir("training_data_empty");
  const absl::StatusOr<TrainingDataFormat> none = DetectTrainingDataFormat(empty);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("train-images-idx3-ubyte"));
  EXPECT_THAT(none.status().message(), HasSubstr("data_batch_1.bin"));
  EXPECT_THAT(none.status().message(), HasSubstr("train/<class>/"));

  const std::string idx = FreshDir("training_data_idx");
  WriteFile(idx + "/train-images-idx3-ubyte.gz", "x");
  EXPECT_EQ(*DetectTrainingDataFormat(idx), TrainingDataFormat::kIdx);

  const std::string cifar = FreshDir("training_data_cifar");
  ASSERT_TRUE(WriteCifar(TinyImages(10, 1, 3), cifar, "train").ok());
  EXPECT_EQ(*DetectTrainingDataFormat(cifar), TrainingDataFormat::kCifar);

  EXPECT_EQ(*DetectTrainingDataFormat(WriteFolder("training_data_folder", 2, 1, 1)),
            TrainingDataFormat::kImageFolder);
}

TEST(TrainingDataTest, ImageFolderTrainsAndEvaluatesEveryTestImageOnce) {
  for (PreprocessingKind kind : {PreprocessingKind::kInception, PreprocessingKind::kPadCrop}) {
    TrainingDataOptions o = Options(WriteFolder("training_data_open", 3, 4, 2));
    o.preprocessing = kind;
    absl::StatusOr<TrainingData> data = OpenTrainingData(o);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(data->format, TrainingDataFormat::kImageFolder);
    EXPECT_THAT(data->notes[0], HasSubstr("image_folder (detected"));
    EXPECT_EQ(data->class_names, (std::vector<std::string>{"class_0", "class_1", "class_2"}));
    ASSERT_NE(data->train, nullptr);
    EXPECT_EQ(data->train->examples_per_epoch(), 12);
    std::vector<float> images(12 * 64);
    std::vector<int> labels(12);
    ASSERT_TRUE(data->train->NextBatch(12, images.data(), labels.data()).ok());
    EXPECT_EQ(std::multiset<int>(labels.begin(), labels.end()),
              (std::multiset<int>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));

    auto reader = data->make_test_reader();
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ((*reader)->size(), 6);
    std::vector<int> seen;
    for (;;) {
      absl::StatusOr<int> n = (*reader)->NextBatch(4, images.data(), labels.data());
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) break;
      seen.insert(seen.end(), labels.begin(), labels.begin() + *n);
    }
    EXPECT_EQ(seen, (std::vector<int>{0, 0, 1, 1, 2, 2}));
  }
}

TEST(TrainingDataTest, ShardsAreDisjointAndCoverTheData) {
  const std::string dir = WriteFolder("training_data_shards", 2, 5, 1);
  int total = 0;
  for (int shard = 0; shard < 2; ++shard) {
    TrainingDataOptions o = Options(dir);
    o.shard_index = shard;
    o.num_shards = 2;
    o.open_test = false;
    absl::StatusOr<TrainingData> data = OpenTrainingData(o);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_FALSE(data->make_test_reader);
    total += data->train->examples_per_epoch();
  }
  EXPECT_EQ(total, 10);
}

TEST(TrainingDataTest, BadImageIsAnErrorUnlessSkipped) {
  const std::string dir = WriteFolder("training_data_bad", 2, 3, 1);
  const std::string bad = dir + "/train/class_1/zz_broken.png";
  WriteFile(bad, "not a png at all");
  absl::StatusOr<TrainingData> failed = OpenTrainingData(Options(dir));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.status().message(), HasSubstr("zz_broken.png"));
  EXPECT_THAT(failed.status().message(), HasSubstr("--skip_bad_images"));

  TrainingDataOptions o = Options(dir);
  o.skip_bad_images = true;
  absl::StatusOr<TrainingData> data = OpenTrainingData(o);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train->examples_per_epoch(), 6);
  EXPECT_THAT(absl::StrJoin(data->notes, "\n"), HasSubstr("zz_broken.png"));
}

TEST(TrainingDataTest, CifarNeedsThreeChannels) {
  const std::string dir = FreshDir("training_data_cifar_open");
  ASSERT_TRUE(WriteCifar(TinyImages(10, 2, 3), dir, "train").ok());
  ASSERT_TRUE(WriteCifar(TinyImages(10, 1, 3), dir, "test").ok());
  TrainingDataOptions o = Options(dir);
  absl::StatusOr<TrainingData> refused = OpenTrainingData(o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("3 channels"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--channels=1"));

  o.channels = 3;
  absl::StatusOr<TrainingData> data = OpenTrainingData(o);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->format, TrainingDataFormat::kCifar);
  EXPECT_EQ(data->class_names[9], "class_9");
  EXPECT_EQ(data->train->examples_per_epoch(), 20);
  EXPECT_EQ(data->train->output_shape().channels, 3);
  EXPECT_EQ((*data->make_test_reader())->size(), 10);
}

TEST(TrainingDataTest, ClassesMustMatchTheDataWhenGiven) {
  TrainingDataOptions o = Options(WriteFolder("training_data_classes", 3, 1, 1));
  o.num_classes = 10;
  absl::StatusOr<TrainingData> data = OpenTrainingData(o);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("--classes=10"));
  EXPECT_THAT(data.status().message(), HasSubstr("has 3 classes"));
  o.num_classes = 3;
  EXPECT_TRUE(OpenTrainingData(o).ok());
}

TEST(TrainingDataTest, EvaluationOnlyOpensNoTrainingSource) {
  TrainingDataOptions o = Options(WriteFolder("training_data_eval", 2, 2, 3));
  o.open_train = false;
  absl::StatusOr<TrainingData> data = OpenTrainingData(o);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train, nullptr);
  EXPECT_EQ((*data->make_test_reader())->size(), 6);
}

}  // namespace
}  // namespace mobilenet
