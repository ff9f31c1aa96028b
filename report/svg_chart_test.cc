#include "report/svg_chart.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(EscapeXmlTest, EscapesMarkupCharacters) {
  EXPECT_EQ(EscapeXml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(EscapeXml("plain"), "plain");
}

TEST(SlugTest, LowercaseWordsJoinedByDashes) {
  EXPECT_EQ(Slug("Worker 1 training loss"), "worker-1-training-loss");
  EXPECT_EQ(Slug("  p50 (%) "), "p50");
  EXPECT_EQ(Slug("<script>"), "script");
}

TEST(NiceTicksTest, RoundStepsCoveringTheRange) {
  EXPECT_THAT(NiceTicks(0, 10, 5), ::testing::ElementsAre(0, 2, 4, 6, 8, 10));
  EXPECT_THAT(NiceTicks(73.2, 91.2, 6), ::testing::ElementsAre(70, 75, 80, 85, 90, 95));
  EXPECT_TRUE(NiceTicks(1, 1, 5).empty());
  EXPECT_TRUE(NiceTicks(0, std::numeric_limits<double>::infinity(), 5).empty());
}

TEST(RenderLineChartTest, EverySeriesIsAPathWithItsIdAndLegend) {
  const std::string svg =
      RenderLineChart({"accuracy-step",
                       "Test accuracy",
                       "global step",
                       "accuracy (%)",
                       {{"test accuracy", {{935, 73.22}, {1900, 81.54}, {11250, 91.21}}},
                        {"worker 1", {{0, 80}, {100, 85}}}}});
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"accuracy-step\""));
  EXPECT_THAT(svg, HasSubstr("id=\"accuracy-step-test-accuracy\""));
  EXPECT_THAT(svg, HasSubstr("data-points=\"3\""));
  EXPECT_THAT(svg, HasSubstr("id=\"accuracy-step-worker-1\""));
  EXPECT_THAT(svg, HasSubstr(">worker 1</text>"));  // legend
  EXPECT_THAT(svg, HasSubstr(">global step</text>"));
  EXPECT_THAT(svg, HasSubstr(">accuracy (%)</text>"));
  EXPECT_THAT(svg, HasSubstr("<path d=\"M"));
  EXPECT_THAT(svg, HasSubstr(">10000</text>"));  // an x tick
  EXPECT_THAT(svg, Not(HasSubstr("no data")));
  EXPECT_EQ(svg.substr(svg.size() - 6), "</svg>");
}

TEST(RenderLineChartTest, EscapesEveryText) {
  const std::string svg =
      RenderLineChart({"c\"", "<b>title</b>", "x & y", "'y'", {{"<script>", {{0, 1}, {1, 2}}}}});
  EXPECT_THAT(svg, Not(HasSubstr("<b>")));
  EXPECT_THAT(svg, Not(HasSubstr("<script>")));
  EXPECT_THAT(svg, HasSubstr("&lt;b&gt;title&lt;/b&gt;"));
  EXPECT_THAT(svg, HasSubstr("x &amp; y"));
  EXPECT_THAT(svg, HasSubstr("&#39;y&#39;"));
  EXPECT_THAT(svg, HasSubstr("id=\"c&quot;\""));
  EXPECT_THAT(svg, HasSubstr("data-series=\"&lt;script&gt;\""));
}

TEST(RenderLineChartTest, NoPointsSaysNoData) {
  const std::string svg = RenderLineChart({"empty", "Nothing", "x", "y", {{"a", {}}}});
  EXPECT_THAT(svg, HasSubstr("no data"));
  EXPECT_THAT(svg, Not(HasSubstr("<path")));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(RenderLineChart({"nan", "NaN", "x", "y", {{"a", {{nan, 1}, {1, nan}}}}}),
              HasSubstr("no data"));
}

TEST(RenderLineChartTest, OnePointOrFlatLineIsDrawn) {
  const std::string svg = RenderLineChart({"one", "One", "x", "y", {{"a", {{5, 5}}}}});
  EXPECT_THAT(svg, HasSubstr("<circle"));
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
  EXPECT_THAT(RenderLineChart({"flat", "Flat", "x", "y", {{"a", {{0, 3}, {9, 3}}}}}),
              Not(HasSubstr("nan")));
}

TEST(RenderBarChartTest, GroupPerSeriesAndBarPerCategory) {
  const std::string svg =
      RenderBarChart({"step-time",
                      "Step time",
                      "ms",
                      {"worker 0", "worker 1"},
                      {{"step time", {82.1, 80.3}}, {"push latency", {78.8, -1}}}});
  EXPECT_THAT(svg, HasSubstr("id=\"step-time-step-time\""));
  EXPECT_THAT(svg, HasSubstr("id=\"step-time-push-latency\""));
  EXPECT_THAT(svg, HasSubstr("<title>worker 1 step time: 80.3</title>"));
  EXPECT_THAT(svg, Not(HasSubstr("worker 1 push latency")));  // missing value: no bar
  EXPECT_THAT(svg, HasSubstr(">worker 0</text>"));
}

TEST(RenderBarChartTest, NoValuesSaysNoData) {
  EXPECT_THAT(RenderBarChart({"b", "B", "ms", {}, {}}), HasSubstr("no data"));
  EXPECT_THAT(RenderBarChart({"b", "B", "ms", {"w"}, {{"s", {-1}}}}), HasSubstr("no data"));
}

}  // namespace
}  // namespace mobilenet
