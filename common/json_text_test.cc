#include "common/json_text.h"

#include <string>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(JsonStringTest, QuotesPlainText) {
  EXPECT_EQ(JsonString(""), "\"\"");
  EXPECT_EQ(JsonString("T-shirt/top"), "\"T-shirt/top\"");
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(JsonString("C:\\data"), "\"C:\\\\data\"");
  EXPECT_EQ(JsonString("a\nb"), "\"a\\nb\"");
  EXPECT_EQ(JsonString("a\tb\rc"), "\"a\\u0009b\\u000dc\"");
  EXPECT_EQ(JsonString(std::string("\0\x1f\x7f", 3)), "\"\\u0000\\u001f\\u007f\"");
}

TEST(JsonStringTest, LeavesUtf8Unchanged) { EXPECT_EQ(JsonString("Bär ネコ"), "\"Bär ネコ\""); }

}  // namespace
}  // namespace mobilenet
