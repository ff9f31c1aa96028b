#include "model/architecture.h"

#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

Architecture Build(const MobileNetConfig& config) {
  absl::StatusOr<Architecture> arch = BuildArchitecture(config);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return *std::move(arch);
}

struct Row {
  ConvKind kind;
  int stride;
  int in_size, in_channels, out_size, out_channels;
};

// The paper's Table 1 (1.0 MobileNet-224), with the last depthwise at stride 1.
TEST(ArchitectureTest, MatchesTable1At224) {
  const Row rows[] = {
      {ConvKind::kFull, 2, 224, 3, 112, 32},
      {ConvKind::kDepthwise, 1, 112, 32, 112, 32},
      {ConvKind::kPointwise, 1, 112, 32, 112, 64},
      {ConvKind::kDepthwise, 2, 112, 64, 56, 64},
      {ConvKind::kPointwise, 1, 56, 64, 56, 128},
      {ConvKind::kDepthwise, 1, 56, 128, 56, 128},
      {ConvKind::kPointwise, 1, 56, 128, 56, 128},
      {ConvKind::kDepthwise, 2, 56, 128, 28, 128},
      {ConvKind::kPointwise, 1, 28, 128, 28, 256},
      {ConvKind::kDepthwise, 1, 28, 256, 28, 256},
      {ConvKind::kPointwise, 1, 28, 256, 28, 256},
      {ConvKind::kDepthwise, 2, 28, 256, 14, 256},
      {ConvKind::kPointwise, 1, 14, 256, 14, 512},
      {ConvKind::kDepthwise, 1, 14, 512, 14, 512},
      {ConvKind::kPointwise, 1, 14, 512, 14, 512},
      {ConvKind::kDepthwise, 1, 14, 512, 14, 512},
      {ConvKind::kPointwise, 1, 14, 512, 14, 512},
      {ConvKind::kDepthwise, 1, 14, 512, 14, 512},
      {ConvKind::kPointwise, 1, 14, 512, 14, 512},
      {ConvKind::kDepthwise, 1, 14, 512, 14, 512},
      {ConvKind::kPointwise, 1, 14, 512, 14, 512},
      {ConvKind::kDepthwise, 1, 14, 512, 14, 512},
      {ConvKind::kPointwise, 1, 14, 512, 14, 512},
      {ConvKind::kDepthwise, 2, 14, 512, 7, 512},
      {ConvKind::kPointwise, 1, 7, 512, 7, 1024},
      {ConvKind::kDepthwise, 1, 7, 1024, 7, 1024},
      {ConvKind::kPointwise, 1, 7, 1024, 7, 1024},
  };
  const Architecture arch = Build(MobileNetConfig{});
  ASSERT_EQ(arch.convs.size(), std::size(rows));
  for (size_t i = 0; i < std::size(rows); ++i) {
    const ConvLayerSpec& c = arch.convs[i];
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.kind, rows[i].kind);
    EXPECT_EQ(c.stride, rows[i].stride);
    EXPECT_EQ(c.kernel, rows[i].kind == ConvKind::kPointwise ? 1 : 3);
    EXPECT_EQ(c.in_h, rows[i].in_size);
    EXPECT_EQ(c.in_w, rows[i].in_size);
    EXPECT_EQ(c.in_channels, rows[i].in_channels);
    EXPECT_EQ(c.out_h, rows[i].out_size);
    EXPECT_EQ(c.out_w, rows[i].out_size);
    EXPECT_EQ(c.out_channels, rows[i].out_channels);
  }
  EXPECT_EQ(arch.classifier_in, 1024);
  EXPECT_EQ(arch.classifier_out, 1000);
}

TEST(ArchitectureTest, NamesFollowTfSlim) {
  const Architecture arch = Build(MobileNetConfig{});
  EXPECT_EQ(arch.convs[0].name, "MobilenetV1/Conv2d_0");
  EXPECT_EQ(arch.convs[1].name, "MobilenetV1/Conv2d_1_depthwise");
  EXPECT_EQ(arch.convs[2].name, "MobilenetV1/Conv2d_1_pointwise");
  EXPECT_EQ(arch.convs[25].name, "MobilenetV1/Conv2d_13_depthwise");
  EXPECT_EQ(arch.convs[26].name, "MobilenetV1/Conv2d_13_pointwise");
  EXPECT_EQ(arch.classifier_name, "MobilenetV1/Logits/Conv2d_1c_1x1");
}

TEST(ArchitectureTest, ScaledChannelsTruncatesWithFloorOfEight) {
  EXPECT_EQ(ScaledChannels(1024, 1.0f), 1024);
  EXPECT_EQ(ScaledChannels(1024, 0.75f), 768);
  EXPECT_EQ(ScaledChannels(32, 0.25f), 8);
  EXPECT_EQ(ScaledChannels(64, 0.1f), 8);
  EXPECT_EQ(ScaledChannels(128, 0.35f), 44);  // int(44.8)
  EXPECT_EQ(ScaledChannels(1000, 0.3f), 300);  // 0.3f is slightly below 0.3
  EXPECT_EQ(ScaledChannels(32, 1.4f), 44);
}

TEST(ArchitectureTest, WidthMultiplierScalesEveryConv) {
  MobileNetConfig config;
  config.alpha = 0.5f;
  const Architecture arch = Build(config);
  EXPECT_EQ(arch.convs[0].out_channels, 16);
  EXPECT_EQ(arch.convs[2].out_channels, 32);
  EXPECT_EQ(arch.convs.back().out_channels, 512);
  EXPECT_EQ(arch.classifier_in, 512);
  for (size_t i = 1; i < arch.convs.size(); ++i) {
    EXPECT_EQ(arch.convs[i].in_channels, arch.convs[i - 1].out_channels) << i;
  }
}

TEST(ArchitectureTest, SamePaddingHandlesAnyResolution) {
  MobileNetConfig config;
  config.resolution = 28;
  config.input_channels = 1;
  config.num_classes = 10;
  const Architecture arch = Build(config);
  EXPECT_EQ(arch.convs[0].in_channels, 1);
  EXPECT_EQ(arch.convs[0].out_h, 14);
  EXPECT_EQ(arch.convs[3].out_h, 7);    // Conv2d_2_depthwise
  EXPECT_EQ(arch.convs[7].out_h, 4);    // Conv2d_4_depthwise: ceil(7 / 2)
  EXPECT_EQ(arch.convs[11].out_h, 2);   // Conv2d_6_depthwise
  EXPECT_EQ(arch.convs[23].out_h, 1);   // Conv2d_12_depthwise
  EXPECT_EQ(arch.convs.back().out_h, 1);
  EXPECT_EQ(arch.classifier_out, 10);

  config.resolution = 225;
  EXPECT_EQ(Build(config).convs[0].out_w, 113);
  config.resolution = 1;
  const Architecture tiny = Build(config);
  for (const ConvLayerSpec& c : tiny.convs) EXPECT_EQ(c.out_h, 1) << c.name;
}

TEST(ArchitectureTest, ShallowDropsTheFive14x14Blocks) {
  MobileNetConfig config;
  config.shallow = true;
  const Architecture arch = Build(config);
  ASSERT_EQ(arch.convs.size(), 27u - 10u);
  for (const ConvLayerSpec& c : arch.convs) {
    for (int removed = 7; removed <= 11; ++removed) {
      EXPECT_THAT(c.name, ::testing::Not(HasSubstr("Conv2d_" + std::to_string(removed) + "_")));
    }
  }
  // Conv2d_6 (to 14x14x512) is followed directly by Conv2d_12 (to 7x7).
  EXPECT_EQ(arch.convs[12].name, "MobilenetV1/Conv2d_6_pointwise");
  EXPECT_EQ(arch.convs[13].name, "MobilenetV1/Conv2d_12_depthwise");
  EXPECT_EQ(arch.convs[13].in_h, 14);
  EXPECT_EQ(arch.convs[13].in_channels, 512);
  EXPECT_EQ(arch.convs.back().out_h, 7);
  EXPECT_EQ(arch.classifier_in, 1024);
}

TEST(ArchitectureTest, RejectsBadConfigsNamingTheField) {
  struct Case {
    MobileNetConfig config;
    const char* field;
  };
  std::vector<Case> cases;
  MobileNetConfig c;
  c.alpha = 0.0f;
  cases.push_back({c, "alpha"});
  c = MobileNetConfig{};
  c.alpha = -1.0f;
  cases.push_back({c, "alpha"});
  c = MobileNetConfig{};
  c.alpha = std::nanf("");
  cases.push_back({c, "alpha"});
  c = MobileNetConfig{};
  c.resolution = 0;
  cases.push_back({c, "resolution"});
  c = MobileNetConfig{};
  c.input_channels = 0;
  cases.push_back({c, "input_channels"});
  c = MobileNetConfig{};
  c.num_classes = 1;
  cases.push_back({c, "num_classes"});
  for (const Case& bad : cases) {
    absl::StatusOr<Architecture> arch = BuildArchitecture(bad.config);
    ASSERT_FALSE(arch.ok()) << bad.field;
    EXPECT_EQ(arch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(arch.status().message()), HasSubstr(bad.field));
  }
}

}  // namespace
}  // namespace mobilenet
