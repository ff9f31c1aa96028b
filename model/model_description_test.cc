#include "model/model_description.h"

#include <cmath>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

ModelDescription DescribeConfig(float alpha, int resolution, bool shallow = false) {
  MobileNetConfig config;
  config.alpha = alpha;
  config.resolution = resolution;
  config.shallow = shallow;
  absl::StatusOr<Architecture> arch = BuildArchitecture(config);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return Describe(*arch);
}

// `printed` is a number as the paper prints it; `actual` must be within one unit of its
// last printed digit (the paper rounds inconsistently: 290.7M is printed 290, 568.7M 569).
void ExpectWithinLastDigit(const char* what, double actual, const std::string& printed) {
  const size_t dot = printed.find('.');
  const int decimals = dot == std::string::npos ? 0 : static_cast<int>(printed.size() - dot - 1);
  const double unit = std::pow(10.0, -decimals);
  EXPECT_LE(std::fabs(actual - std::stod(printed)), unit * (1 + 1e-9))
      << what << ": " << actual << " vs the paper's " << printed;
}

struct PaperRow {
  const char* model;
  float alpha;
  int resolution;
  bool shallow;
  const char* million_mult_adds;
  const char* million_params;
};

// Tables 4 (shallow), 6 (width), 7 (resolution) and 8's 0.50 MobileNet-160.
const PaperRow kPaperRows[] = {
    {"1.0 MobileNet-224", 1.0f, 224, false, "569", "4.2"},
    {"0.75 MobileNet-224", 0.75f, 224, false, "325", "2.6"},
    {"0.5 MobileNet-224", 0.5f, 224, false, "149", "1.3"},
    {"0.25 MobileNet-224", 0.25f, 224, false, "41", "0.5"},
    {"1.0 MobileNet-192", 1.0f, 192, false, "418", "4.2"},
    {"1.0 MobileNet-160", 1.0f, 160, false, "290", "4.2"},
    {"1.0 MobileNet-128", 1.0f, 128, false, "186", "4.2"},
    {"0.50 MobileNet-160", 0.5f, 160, false, "76", "1.32"},
    {"Shallow MobileNet", 1.0f, 224, true, "307", "2.9"},
};

TEST(ModelDescriptionTest, ReproducesEveryPaperRow) {
  for (const PaperRow& row : kPaperRows) {
    const ModelDescription d = DescribeConfig(row.alpha, row.resolution, row.shallow);
    ExpectWithinLastDigit(row.model, d.mult_adds / 1e6, row.million_mult_adds);
    ExpectWithinLastDigit(row.model, d.params / 1e6, row.million_params);
  }
}

TEST(ModelDescriptionTest, ExactCountsFor224) {
  const ModelDescription d = DescribeConfig(1.0f, 224);
  EXPECT_EQ(d.params, 4209088);
  EXPECT_EQ(d.mult_adds, 568740352);
  EXPECT_EQ(d.classifier_bias, 1000);
  // gamma + beta of every conv: 2 * (32 + sum of the 13 blocks' depthwise and pointwise).
  EXPECT_EQ(d.batch_norm_params, 2 * (32 + 32 + 64 + 64 + 128 + 128 + 128 + 128 + 256 + 256 +
                                       256 + 256 + 512 + 5 * (512 + 512) + 512 + 1024 +
                                       1024 + 1024));
  ASSERT_EQ(d.layers.size(), 28u);
  EXPECT_EQ(d.layers[0].type, LayerType::kFullConv3x3);
  EXPECT_EQ(d.layers[0].input_shape, "224x224x3");
  EXPECT_EQ(d.layers[0].output_shape, "112x112x32");
  EXPECT_EQ(d.layers[0].params, 3 * 3 * 3 * 32);
  EXPECT_EQ(d.layers[0].mult_adds, 3 * 3 * 3 * 32 * 112 * 112);
  EXPECT_EQ(d.layers[1].type, LayerType::kDepthwiseConv3x3);
  EXPECT_EQ(d.layers[1].params, 3 * 3 * 32);
  EXPECT_EQ(d.layers[1].mult_adds, 3 * 3 * 32 * 112 * 112);
  EXPECT_EQ(d.layers[2].type, LayerType::kPointwiseConv1x1);
  EXPECT_EQ(d.layers[2].mult_adds, 32 * 64 * 112 * 112);
  EXPECT_EQ(d.layers.back().type, LayerType::kFullyConnected);
  EXPECT_EQ(d.layers.back().params, 1024 * 1000);
  EXPECT_EQ(d.layers.back().mult_adds, 1024 * 1000);
}

// Table 2: resource per layer type for 1.0 MobileNet-224. The paper prints 1.19% for the
// full 3x3 convolution's mult-adds; the count is 1.91% (a digit swap).
TEST(ModelDescriptionTest, ReproducesTable2Shares) {
  const ModelDescription d = DescribeConfig(1.0f, 224);
  struct Expected {
    LayerType type;
    double mult_adds_percent;
    double params_percent;
  };
  const Expected table2[] = {
      {LayerType::kPointwiseConv1x1, 94.86, 74.59},
      {LayerType::kDepthwiseConv3x3, 3.06, 1.06},
      {LayerType::kFullConv3x3, 1.91, 0.02},
      {LayerType::kFullyConnected, 0.18, 24.33},
  };
  ASSERT_EQ(d.shares.size(), std::size(table2));
  double mult_adds_total = 0, params_total = 0;
  for (const Expected& e : table2) {
    bool found = false;
    for (const TypeShare& s : d.shares) {
      if (s.type != e.type) continue;
      found = true;
      EXPECT_NEAR(s.mult_adds_percent, e.mult_adds_percent, 0.05) << LayerTypeName(e.type);
      EXPECT_NEAR(s.params_percent, e.params_percent, 0.05) << LayerTypeName(e.type);
      mult_adds_total += s.mult_adds_percent;
      params_total += s.params_percent;
    }
    EXPECT_TRUE(found) << LayerTypeName(e.type);
  }
  EXPECT_NEAR(mult_adds_total, 100.0, 1e-9);
  EXPECT_NEAR(params_total, 100.0, 1e-9);
}

TEST(ModelDescriptionTest, TableListsEveryLayerAndTotals) {
  const ModelDescription d = DescribeConfig(1.0f, 224);
  const std::string table = FormatDescriptionTable(d);
  for (const LayerDescription& l : d.layers) EXPECT_THAT(table, HasSubstr(l.name));
  EXPECT_THAT(table, HasSubstr("4.21M params"));
  EXPECT_THAT(table, HasSubstr("568.74M mult-adds"));
  EXPECT_THAT(table, HasSubstr("Conv dw 3x3"));
  EXPECT_THAT(table, HasSubstr("94.86%"));
  EXPECT_THAT(table, HasSubstr("7x7x1024"));
}

TEST(ModelDescriptionTest, JsonCarriesTotalsAndShares) {
  const ModelDescription d = DescribeConfig(0.5f, 160);
  const std::string json = FormatDescriptionJson(d);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_THAT(json, HasSubstr("\"params\": " + std::to_string(d.params)));
  EXPECT_THAT(json, HasSubstr("\"mult_adds\": " + std::to_string(d.mult_adds)));
  EXPECT_THAT(json, HasSubstr("\"name\": \"MobilenetV1/Conv2d_13_pointwise\""));
  EXPECT_THAT(json, HasSubstr("\"type\": \"Fully connected\""));
  EXPECT_THAT(json, HasSubstr("\"mult_adds_percent\": "));
  int depth = 0;
  for (char c : json) {
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ASSERT_GE(depth, 0);
  }
  EXPECT_EQ(depth, 0);
}

}  // namespace
}  // namespace mobilenet
