#include "security/transport_security.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/certificates_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

TEST(TransportSecurityTest, LoopbackAddressesAreRecognized) {
  for (const char* address : {"127.0.0.1:5000", "127.1.2.3:1", "[::1]:5000", "localhost:80"}) {
    EXPECT_TRUE(IsLoopbackAddress(address)) << address;
  }
  for (const char* address : {"0.0.0.0:5000", "10.0.0.1:5000", "[::]:5000", "ps-0:5000",
                              "localhost.example.com:5000", "1127.0.0.1:5000", ":5000"}) {
    EXPECT_FALSE(IsLoopbackAddress(address)) << address;
  }
}

TEST(TransportSecurityTest, ListeningBeyondLoopbackNeedsSecurityOrADeliberateFlag) {
  TransportSecurity none;
  EXPECT_TRUE(CheckListeningAllowed("127.0.0.1:5000", none).ok());
  const absl::Status refused = CheckListeningAllowed("0.0.0.0:5000", none);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("refusing to listen on 0.0.0.0:5000"));
  EXPECT_THAT(refused.message(), HasSubstr("deploy/make_certs.sh"));
  EXPECT_THAT(refused.message(), HasSubstr("--insecure"));

  TransportSecurity insecure;
  insecure.insecure = true;
  EXPECT_TRUE(CheckListeningAllowed("0.0.0.0:5000", insecure).ok());
  TransportSecurity tls;
  tls.tls_cert_file = "c";
  tls.tls_key_file = "k";
  tls.tls_ca_file = "a";
  EXPECT_TRUE(CheckListeningAllowed("10.1.2.3:5000", tls).ok());
  TransportSecurity tokens;
  tokens.auth_token_file = "t";
  EXPECT_TRUE(CheckListeningAllowed("10.1.2.3:5000", tokens).ok());
  EXPECT_EQ(tls.Describe(), "mutual TLS");
  EXPECT_EQ(tokens.Describe(), "bearer tokens");
  EXPECT_EQ(none.Describe(), "none");
}

TEST(TransportSecurityTest, SettingsAreCheckedWholeAndTheirFilesReadable) {
  char pattern[] = "/tmp/transport_security_testXXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  TestCertificateAuthority ca;
  const PemPair ps = ca.Issue("ps-0");
  WriteTestFile(dir + "/ca.crt", ca.certificate_pem());
  WriteTestFile(dir + "/ps-0.crt", ps.certificate);
  WriteTestFile(dir + "/ps-0.key", ps.key);

  TransportSecurity security;
  EXPECT_TRUE(CheckTransportSecurity(security).ok());
  security.tls_cert_file = dir + "/ps-0.crt";
  absl::Status status = CheckTransportSecurity(security);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("all three of --tls_cert_file, --tls_key_file"));
  security.tls_key_file = dir + "/ps-0.key";
  security.tls_ca_file = dir + "/missing.crt";
  status = CheckTransportSecurity(security);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--tls_ca_file=" + dir + "/missing.crt: cannot be read"));
  security.tls_ca_file = dir + "/ca.crt";
  EXPECT_TRUE(CheckTransportSecurity(security).ok());
  EXPECT_TRUE(security.tls());
  EXPECT_NE(ServerCredentialsFor(security), nullptr);
  EXPECT_NE(ChannelCredentialsFor(security), nullptr);
  security.auth_token_file = dir + "/missing.tokens";
  EXPECT_THAT(CheckTransportSecurity(security).message(), HasSubstr("--auth_token_file="));
  std::system(absl::StrCat("rm -rf ", dir).c_str());
}

}  // namespace
}  // namespace mobilenet
