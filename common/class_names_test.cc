#include "common/class_names.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ClassNamesTest, AcceptsUtf8NamesOfTheModelsCount) {
  const std::vector<std::string> names = {"cat", "dog", "Bär", "ネコ", "a b,c"};
  EXPECT_TRUE(CheckClassNames(names, 5).ok());
  EXPECT_TRUE(CheckClassNames(names, -1).ok());
  EXPECT_TRUE(CheckClassNames({}, 10).ok());  // unknown names
}

TEST(ClassNamesTest, RefusesWrongCount) {
  const absl::Status status = CheckClassNames({"cat", "dog"}, 3);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("2 class names for a model of 3 classes"));
}

TEST(ClassNamesTest, RefusesBadNamesNamingTheIndex) {
  const struct {
    std::string name;
    const char* problem;
  } cases[] = {
      {"", "class name 1 is empty"},
      {std::string(kMaxClassNameBytes + 1, 'a'), "class name 1 has 257 bytes"},
      {"ca\xfft", "class name 1 is not valid UTF-8 (at byte 2)"},
      {"\xc3", "not valid UTF-8"},          // truncated sequence
      {"\xc0\xaf", "not valid UTF-8"},      // overlong '/'
      {"\xed\xa0\x80", "not valid UTF-8"},  // surrogate
      {"two\nlines", "control character 0x0a"},
      {"tab\t", "control character 0x09"},
      {"c1\xc2\x85", "control character U+0085"},
  };
  for (const auto& c : cases) {
    const absl::Status status = CheckClassNames({"ok", c.name}, 2);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.problem;
    EXPECT_THAT(status.message(), HasSubstr(c.problem));
  }
  EXPECT_TRUE(CheckClassNames({"ok", std::string(kMaxClassNameBytes, 'a')}, 2).ok());
}

TEST(ClassNamesTest, RefusesTooManyBytesTogether) {
  const int count = kMaxClassNamesTotalBytes / kMaxClassNameBytes + 1;
  const std::vector<std::string> names(count, std::string(kMaxClassNameBytes, 'x'));
  EXPECT_THAT(CheckClassNames(names, count).message(), HasSubstr("bytes together"));
}

TEST(ClassNamesTest, DescriptionsStaySmall) {
  EXPECT_EQ(DescribeClassNames({"a", "b"}), "[a, b]");
  const std::vector<std::string> many(1000, std::string(kMaxClassNameBytes, 'x'));
  const std::string described = DescribeClassNames(many);
  EXPECT_THAT(described, HasSubstr(", ... (1000 names)]"));
  EXPECT_LT(described.size(), 6u * kMaxClassNameBytes);
}

TEST(ClassNamesTest, FormatAndParseRoundTrip) {
  const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Ankle boot"};
  EXPECT_EQ(FormatClassNames(names), "T-shirt/top\nTrouser\nAnkle boot");
  EXPECT_EQ(ParseClassNames(FormatClassNames(names)), names);
  EXPECT_THAT(ParseClassNames(""), ElementsAre());
}

}  // namespace
}  // namespace mobilenet
