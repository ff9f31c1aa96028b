#include "worker/image_prediction.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/class_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/image_encoder.h"
#include "parameter_server/core/model_checkpoint.h"
#include "parameter_server/core/parameter_shard.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

class ImagePredictionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "image_prediction_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_.alpha = 0.25f;
    config_.resolution = 32;
    config_.input_channels = 3;
    config_.num_classes = 3;
  }

  // A checkpoint of a freshly initialized model, as a single-process run writes it, with
  // `class_names` (if any) in its metadata.
  std::string WriteModelCheckpoint(const std::vector<std::string>& class_names) {
    const Architecture arch = *BuildArchitecture(config_);
    const ParameterLayout params = BuildParameterLayout(arch), state = BuildStateLayout(arch);
    ParameterShardConfig shard_config;
    shard_config.seed = 11;
    shard_config.learning_rate.examples_per_epoch = 100;
    auto shard =
        ParameterShard::Create(params, state, WholeModelShardSpec(params, state), shard_config);
    EXPECT_TRUE(shard.ok()) << shard.status();
    Checkpoint c = ShardStateToCheckpoint((*shard)->ExportState(), config_, params, state);
    LedgerState ledger;
    ledger.class_names = class_names;
    PutLedger(ledger, &c);
    const std::string path = dir_ + "/ckpt-0.mnck";
    EXPECT_TRUE(WriteCheckpoint(path, c).ok());
    return path;
  }

  std::string WriteFile(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // A small RGB PNG of a colour gradient.
  std::string WritePng(const std::string& name, int height, int width) {
    DecodedImage image;
    image.height = height;
    image.width = width;
    image.channels = 3;
    for (int i = 0; i < height * width * 3; ++i)
      image.pixels.push_back(static_cast<uint8_t>(i * 7));
    absl::StatusOr<std::string> png = EncodePng(image);
    EXPECT_TRUE(png.ok()) << png.status();
    return WriteFile(name, *png);
  }

  std::string dir_;
  MobileNetConfig config_;
};

TEST_F(ImagePredictionTest, ClassifiesPngFilesByNameFromACheckpointAndReportsBadOnes) {
  const std::vector<std::string> names = {"cat", "dog", "Bär"};
  absl::StatusOr<LoadedModel> model = LoadModel(WriteModelCheckpoint(names));
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->class_names, names);
  std::unique_ptr<MobileNetV1> net = *MobileNetV1::Create(model->config);
  const std::string good = WritePng("a.png", 40, 50);
  const std::string broken = WriteFile("broken.png", "\x89PNG not really");
  const std::string small = WritePng("b.png", 7, 5);  // upscaled
  absl::StatusOr<std::vector<ImagePrediction>> predictions =
      PredictImages(*net, model->parameters.data(), model->state.data(), model->class_names,
                    {good, broken, small, dir_ + "/missing.jpg"}, /*top_k=*/5);
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  ASSERT_EQ(predictions->size(), 4u);

  for (int i : {0, 2}) {
    const ImagePrediction& p = (*predictions)[i];
    ASSERT_TRUE(p.status.ok()) << p.status;
    ASSERT_EQ(p.top.size(), 3u);  // top-5 of 3 classes: all of them
    float sum = 0;
    for (size_t j = 0; j < p.top.size(); ++j) {
      EXPECT_EQ(p.top[j].name, names[p.top[j].index]);
      if (j > 0) EXPECT_GE(p.top[j - 1].probability, p.top[j].probability);
      sum += p.top[j].probability;
    }
    EXPECT_NEAR(sum, 1.0f, 1e-5);
  }
  EXPECT_EQ((*predictions)[0].file, good);
  EXPECT_FALSE((*predictions)[1].status.ok());
  EXPECT_THAT((*predictions)[1].status.message(), HasSubstr(broken));
  EXPECT_THAT((*predictions)[3].status.message(), HasSubstr("missing.jpg"));

  const std::string text = FormatImagePredictionsText(*predictions, true);
  EXPECT_THAT(text, HasSubstr(good + ": " + (*predictions)[0].top[0].name + " (p="));
  EXPECT_THAT(text, HasSubstr("top-3: "));
  EXPECT_THAT(text, HasSubstr(broken + ": error: "));
  const std::string json = FormatImagePredictionsJson(*predictions, true, 0, "raw");
  EXPECT_THAT(json, HasSubstr("\"class_names_known\": true"));
  EXPECT_THAT(json, HasSubstr("\"class\": \"" + (*predictions)[0].top[0].name + "\""));
  EXPECT_THAT(json, HasSubstr("\"error\": "));

  // The top-1 alone.
  predictions = PredictImages(*net, model->parameters.data(), model->state.data(),
                              model->class_names, {good}, /*top_k=*/1);
  ASSERT_TRUE(predictions.ok());
  EXPECT_EQ((*predictions)[0].top.size(), 1u);
}

TEST_F(ImagePredictionTest, WithoutClassNamesClassesAreNumbersAndANoteSaysSo) {
  absl::StatusOr<LoadedModel> model = LoadModel(WriteModelCheckpoint({}));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(model->class_names.empty());
  std::unique_ptr<MobileNetV1> net = *MobileNetV1::Create(model->config);
  absl::StatusOr<std::vector<ImagePrediction>> predictions = PredictImages(
      *net, model->parameters.data(), model->state.data(), {}, {WritePng("a.png", 32, 32)}, 2);
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  EXPECT_TRUE((*predictions)[0].top[0].name.empty());
  const std::string text = FormatImagePredictionsText(*predictions, false);
  EXPECT_THAT(text, HasSubstr("no class names"));
  EXPECT_THAT(text, HasSubstr(": class "));
  EXPECT_THAT(FormatImagePredictionsJson(*predictions, false, 0, "raw"),
              HasSubstr("\"class_names_known\": false"));

  EXPECT_EQ(
      PredictImages(*net, model->parameters.data(), model->state.data(), {}, {}, 0).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PredictImages(*net, model->parameters.data(), model->state.data(), {"a"}, {}, 5)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImagePredictionPreprocessingTest, FollowsTheModelAndTheTrainingsDefaults) {
  MobileNetConfig config;
  config.resolution = 48;
  config.input_channels = 1;
  InceptionPreprocessingConfig pre = ImagePredictionPreprocessing(config);
  EXPECT_FALSE(pre.training);
  EXPECT_EQ(pre.output_height, 48);
  EXPECT_EQ(pre.channels, 1);
  EXPECT_FLOAT_EQ(pre.central_fraction, 0.875f);
  EXPECT_EQ(pre.mean.size(), 1u);
  config.input_channels = 3;
  pre = ImagePredictionPreprocessing(config);
  EXPECT_EQ(pre.mean, ImageNetMean());
  EXPECT_EQ(pre.stddev, ImageNetStddev());
}

}  // namespace
}  // namespace mobilenet
