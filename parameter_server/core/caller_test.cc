#include "parameter_server/core/caller.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(CallerTest, NamesOfCertificatesAndTokensDenoteRoles) {
  absl::StatusOr<Caller> caller = ParseCallerName("worker-0");
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->role, CallerRole::kWorker);
  EXPECT_EQ(caller->index, 0);
  EXPECT_TRUE(caller->is_chief());
  caller = ParseCallerName("worker-17");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->index, 17);
  EXPECT_FALSE(caller->is_chief());
  EXPECT_EQ(caller->name(), "worker-17");
  caller = ParseCallerName("monitor");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->role, CallerRole::kMonitor);
  EXPECT_FALSE(caller->is_chief());
  caller = ParseCallerName("ps-2");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->role, CallerRole::kParameterServer);
  EXPECT_EQ(caller->name(), "ps-2");
  EXPECT_FALSE(Caller::Trusted().is_chief());
  EXPECT_EQ(Caller::Trusted().name(), "a trusted caller");
}

TEST(CallerTest, AnythingElseIsRefusedAndQuotedSafely) {
  for (const char* name :
       {"", "worker-", "worker--1", "worker-+1", "worker-01", "worker-1x", "Worker-1",
        "worker-9999999999", "chief ", "monitors", "ps-", "ps-0 ", "localhost", "worker-1\n"}) {
    const absl::Status status = ParseCallerName(name).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr("expected worker-<i>, monitor or ps-<i>")) << name;
  }
  EXPECT_THAT(ParseCallerName("worker-1\n").status().message(), HasSubstr("worker-1\\n"));
}

}  // namespace
}  // namespace mobilenet
