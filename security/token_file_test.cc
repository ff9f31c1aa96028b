#include "security/token_file.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/certificates_for_test.h"

namespace mobilenet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kWorkerSecret(40, 'w');
const std::string kMonitorSecret = "m0nitor_Secret-0123456789abcdefghijkl";

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/token_file_testXXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf ", dir_).c_str()); }

  std::string Write(const std::string& contents, const std::string& name = "tokens") {
    const std::string path = absl::StrCat(dir_, "/", name);
    WriteTestFile(path, contents);
    return path;
  }

  std::string dir_;
};

TEST_F(TokenFileTest, LinesNameCallersAndTheirSecrets) {
  const std::string path = Write(absl::StrCat("# the cluster's tokens\n\nworker-1 ", kWorkerSecret,
                                              "\n  monitor\t", kMonitorSecret, "  \n"));
  absl::StatusOr<std::vector<TokenEntry>> entries = ReadTokenFile(path);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].caller.name(), "worker-1");
  EXPECT_EQ((*entries)[0].secret, kWorkerSecret);
  EXPECT_EQ((*entries)[1].caller.role, CallerRole::kMonitor);
  absl::StatusOr<std::string> authorization = ClientAuthorization(path);
  ASSERT_TRUE(authorization.ok());
  EXPECT_EQ(*authorization, "Bearer " + kWorkerSecret);
}

TEST_F(TokenFileTest, MalformedFilesNameTheLineButNeverASecret) {
  const std::string short_secret = "tooShort123";
  const struct {
    std::string contents;
    std::string expected;
  } cases[] = {
      {"", "no \"<caller name> <secret>\" line"},
      {"# only a comment\n", "no \"<caller name> <secret>\" line"},
      {absl::StrCat("worker-1\n"), "line 1: expected \"<caller name> <secret>\""},
      {absl::StrCat("worker-1 ", kWorkerSecret, " extra\n"), "line 1: expected"},
      {absl::StrCat("admin ", kWorkerSecret, "\n"), "line 1: \"admin\" is not a caller name"},
      {absl::StrCat("worker-1 ", short_secret, "\n"), "line 1: the secret must be at least 32"},
      {absl::StrCat("worker-1 ", std::string(40, '$'), "\n"), "the secret must be"},
      {absl::StrCat("worker-1 ", kWorkerSecret, "\nworker-1 ", kMonitorSecret, "\n"),
       "line 2: worker-1 is listed twice"},
      {absl::StrCat("worker-1 ", kWorkerSecret, "\nworker-2 ", kWorkerSecret, "\n"),
       "line 2: the secret of worker-2 is another caller's too"},
  };
  for (const auto& c : cases) {
    const absl::Status status = ReadTokenFile(Write(c.contents)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.contents;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr(c.expected), Not(HasSubstr(kWorkerSecret)),
                      Not(HasSubstr(short_secret)), Not(HasSubstr(std::string(40, '$')))))
        << c.contents;
  }
  const absl::Status missing = ReadTokenFile(dir_ + "/missing").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("No such file"));
}

TEST_F(TokenFileTest, TheTableFindsCallersByExactSecretOnly) {
  absl::StatusOr<std::unique_ptr<TokenTable>> table = TokenTable::Load(
      Write(absl::StrCat("worker-1 ", kWorkerSecret, "\nmonitor ", kMonitorSecret, "\n")));
  ASSERT_TRUE(table.ok()) << table.status();
  std::optional<Caller> found = (*table)->Find(kWorkerSecret);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name(), "worker-1");
  found = (*table)->Find(kMonitorSecret);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->role, CallerRole::kMonitor);
  for (const std::string& wrong :
       {std::string(), kWorkerSecret.substr(1), kWorkerSecret + "w", std::string(40, 'x'),
        kWorkerSecret + " ", kWorkerSecret.substr(0, 39) + 'W'}) {
    EXPECT_FALSE((*table)->Find(wrong).has_value()) << wrong;
  }
}

TEST_F(TokenFileTest, TheTableFollowsTheFileAndKeepsTheLastGoodOne) {
  const std::string path = Write(absl::StrCat("worker-1 ", kWorkerSecret, "\n"));
  absl::StatusOr<std::unique_ptr<TokenTable>> table =
      TokenTable::Load(path, /*recheck=*/absl::ZeroDuration());
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_TRUE((*table)->Find(kWorkerSecret).has_value());
  // Rotated: the new secret is taken at the next lookup, the old one no longer.
  usleep(20000);  // a distinct modification time
  Write(absl::StrCat("worker-1 ", kMonitorSecret, "\n"));
  EXPECT_FALSE((*table)->Find(kWorkerSecret).has_value());
  EXPECT_TRUE((*table)->Find(kMonitorSecret).has_value());
  // A broken file (half-written, or a typo) keeps the last good table.
  usleep(20000);
  Write("worker-1\n");
  EXPECT_TRUE((*table)->Find(kMonitorSecret).has_value());
  EXPECT_EQ((*table)->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*table)->Find(kMonitorSecret).has_value());
}

}  // namespace
}  // namespace mobilenet
