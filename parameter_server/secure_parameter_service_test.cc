// The parameter service behind transport security, over real gRPC on loopback: who may
// connect (mutual TLS against the cluster's CA, bearer tokens), who each caller is, what
// each may do, and that every refusal leaves the server as it was.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/parameter_server_core.h"
#include "parameter_server/core/sharding_plan.h"
#include "parameter_server/grpc_server.h"
#include "parameter_server/parameter_service.h"
#include "security/caller_authentication.h"
#include "security/certificates_for_test.h"
#include "security/transport_security.h"

namespace mobilenet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
namespace pb = ::mobilenet::ps::v1;

constexpr int kNumWorkers = 2;
const char* const kSecrets[][2] = {
    {"worker-0", "chief_secret_0123456789abcdefghijklmnop"},
    {"worker-1", "worker_secret_0123456789abcdefghijklmno"},
    {"monitor", "monitor_secret_0123456789abcdefghijklmn"},
};

MobileNetConfig SmallModel() {
  MobileNetConfig config;
  config.alpha = 0.25f;
  config.resolution = 32;
  config.input_channels = 1;
  config.num_classes = 10;
  return config;
}

// What a client presents: a certificate (by file stem, "" for none), the CA it trusts,
// the server name it expects, a bearer token ("" for none).
struct ClientIdentity {
  explicit ClientIdentity(std::string certificate, std::string ca = "ca",
                          std::string server_name = "ps-0", std::string token = "")
      : certificate(std::move(certificate)),
        ca(std::move(ca)),
        server_name(std::move(server_name)),
        token(std::move(token)) {}
  std::string certificate;
  std::string ca;
  std::string server_name;
  std::string token;
};

// Everything the server holds that a request could change.
struct ServerSnapshot {
  int64_t version;
  std::vector<float> weights;
  std::vector<WorkerProgress> workers;
  int64_t eval_examples;
  bool finishing;
};

class SecureParameterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/secure_service_testXXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    WriteFile("ca.crt", ca_.certificate_pem());
    for (const char* name : {"ps-0", "worker-0", "worker-1", "monitor"}) {
      WriteIdentity(name, ca_.Issue(name));
    }
    TestCertificateAuthority stranger("another cluster CA");
    WriteFile("stranger-ca.crt", stranger.certificate_pem());
    WriteIdentity("stranger", stranger.Issue("worker-1"));
    WriteIdentity("expired", ca_.Issue("worker-1", -7200, -3600));
    WriteIdentity("nobody", ca_.Issue("operator"));
    std::string tokens = "# caller secret\n";
    for (const auto& [name, secret] : kSecrets) absl::StrAppend(&tokens, name, " ", secret, "\n");
    WriteFile("server.tokens", tokens);

    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(SmallModel(), 1);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*std::move(plan));
  }

  void TearDown() override {
    if (server_.server) server_.server->Shutdown();
    std::system(absl::StrCat("rm -rf ", dir_).c_str());
  }

  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }
  void WriteFile(const std::string& name, const std::string& contents) {
    WriteTestFile(Path(name), contents);
  }
  void WriteIdentity(const std::string& stem, const PemPair& pair) {
    WriteFile(stem + ".crt", pair.certificate);
    WriteFile(stem + ".key", pair.key);
  }

  // Starts the server as mobilenet-ps would with `tls` and/or `tokens`.
  void StartServer(bool tls, bool tokens) {
    TransportSecurity security;
    if (tls) {
      security.tls_cert_file = Path("ps-0.crt");
      security.tls_key_file = Path("ps-0.key");
      security.tls_ca_file = Path("ca.crt");
    }
    if (tokens) security.auth_token_file = Path("server.tokens");
    ASSERT_TRUE(CheckTransportSecurity(security).ok());
    ParameterShardConfig config;
    config.seed = 7;
    config.learning_rate.examples_per_epoch = 1000;
    CoreOptions options;
    options.num_workers = kNumWorkers;
    options.transport_security = security.Describe();
    absl::StatusOr<std::unique_ptr<ParameterServerCore>> core =
        ParameterServerCore::Create(*plan_, config, options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    absl::StatusOr<std::unique_ptr<CallerAuthenticator>> authenticator =
        CallerAuthenticator::Create(security);
    ASSERT_TRUE(authenticator.ok()) << authenticator.status();
    authenticator_ = std::move(*authenticator);
    service_ = std::make_unique<ParameterService>(core_.get(), authenticator_.get());
    absl::StatusOr<StartedServer> started = StartGrpcServer(
        "127.0.0.1:0", {service_.get()},
        ParameterServerLimits(MessageLimitForPayload(plan_->shard_bytes(0)), kNumWorkers),
        ServerCredentialsFor(security), /*reflection=*/!authenticator_->enabled());
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
  }

  std::shared_ptr<grpc::Channel> Channel(const ClientIdentity& who) {
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    args.SetMaxReceiveMessageSize(64 << 20);
    // A new connection per channel, so that every client makes its own handshake.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (!tls_clients_) {
      credentials = grpc::InsecureChannelCredentials();
    } else if (who.certificate.empty()) {
      grpc::SslCredentialsOptions options;  // trusts the CA, presents nothing
      options.pem_root_certs = ReadFile(Path(who.ca + ".crt"));
      credentials = grpc::SslCredentials(options);
      args.SetSslTargetNameOverride(who.server_name);
    } else {
      TransportSecurity security;
      security.tls_cert_file = Path(who.certificate + ".crt");
      security.tls_key_file = Path(who.certificate + ".key");
      security.tls_ca_file = Path(who.ca + ".crt");
      credentials = ChannelCredentialsFor(security);
      SetExpectedServerName(security, who.server_name, args);
    }
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_.port), credentials, args);
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream file(path);
    return std::string(std::istreambuf_iterator<char>(file), {});
  }

  std::unique_ptr<grpc::ClientContext> Context(const ClientIdentity& who) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!who.token.empty()) context->AddMetadata("authorization", "Bearer " + who.token);
    return context;
  }

  pb::PushRequest PushAs(int32_t worker_id, uint64_t request_id = 1) const {
    pb::PushRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_worker_id(worker_id);
    request.set_request_id(request_id);
    request.set_example_count(8);
    std::vector<float> gradients(core_->parameter_count(), 0.25f);
    request.mutable_gradients()->assign(reinterpret_cast<const char*>(gradients.data()),
                                        gradients.size() * sizeof(float));
    return request;
  }
  pb::PullRequest PullAs(int32_t worker_id) const {
    pb::PullRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_worker_id(worker_id);
    return request;
  }
  pb::FinishRequest FinishAs(int32_t worker_id, bool complete) const {
    pb::FinishRequest request;
    request.set_plan_fingerprint(plan_->fingerprint());
    request.set_worker_id(worker_id);
    request.set_training_complete(complete);
    return request;
  }
  pb::EvaluationReport Evaluation() const {
    pb::EvaluationReport report;
    report.set_plan_fingerprint(plan_->fingerprint());
    report.set_worker_id(0);
    report.set_examples(100);
    report.set_correct(99);
    return report;
  }

  grpc::Status Push(const ClientIdentity& who, const pb::PushRequest& request) {
    pb::PushResponse response;
    return pb::ParameterServer::NewStub(Channel(who))->Push(Context(who).get(), request, &response);
  }
  grpc::Status Pull(const ClientIdentity& who, const pb::PullRequest& request) {
    pb::PullResponse response;
    return pb::ParameterServer::NewStub(Channel(who))->Pull(Context(who).get(), request, &response);
  }
  grpc::Status Finish(const ClientIdentity& who, const pb::FinishRequest& request) {
    pb::FinishResponse response;
    return pb::ParameterServer::NewStub(Channel(who))
        ->Finish(Context(who).get(), request, &response);
  }
  grpc::Status Report(const ClientIdentity& who, const pb::EvaluationReport& request) {
    pb::EvaluationAck response;
    return pb::ParameterServer::NewStub(Channel(who))
        ->ReportEvaluation(Context(who).get(), request, &response);
  }
  grpc::Status Status(const ClientIdentity& who, pb::StatusResponse* response) {
    return pb::ParameterServer::NewStub(Channel(who))
        ->GetStatus(Context(who).get(), pb::StatusRequest(), response);
  }

  // A unary call by method name with raw bytes (health, reflection).
  grpc::Status RawCall(const ClientIdentity& who, const std::string& method,
                       const std::string& request_bytes, std::string* response_bytes) {
    grpc::GenericStub generic(Channel(who));
    grpc::Slice slice(request_bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    auto context = Context(who);
    absl::Notification done;
    grpc::Status result;
    generic.UnaryCall(context.get(), method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status status) {
                        result = status;
                        done.Notify();
                      });
    done.WaitForNotification();
    std::vector<grpc::Slice> slices;
    response_bytes->clear();
    if (result.ok() && response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return result;
  }

  ServerSnapshot Snapshot() const {
    ServerSnapshot snapshot;
    snapshot.version = core_->shard().version();
    snapshot.weights.resize(core_->parameter_count());
    std::vector<float> state(core_->state_count());
    core_->shard().Pull(absl::MakeSpan(snapshot.weights), absl::MakeSpan(state));
    snapshot.workers = core_->ExportState().ledger.workers;
    snapshot.eval_examples = core_->GetStatus().eval_examples();
    snapshot.finishing = core_->finishing();
    return snapshot;
  }

  static void ExpectUnchanged(const ServerSnapshot& before, const ServerSnapshot& after) {
    EXPECT_EQ(after.version, before.version);
    EXPECT_EQ(after.weights, before.weights);
    ASSERT_EQ(after.workers.size(), before.workers.size());
    for (size_t i = 0; i < after.workers.size(); ++i) {
      EXPECT_EQ(after.workers[i].pushes, before.workers[i].pushes) << i;
      EXPECT_EQ(after.workers[i].examples, before.workers[i].examples) << i;
      EXPECT_EQ(after.workers[i].finished, before.workers[i].finished) << i;
    }
    EXPECT_EQ(after.eval_examples, before.eval_examples);
    EXPECT_EQ(after.finishing, before.finishing);
  }

  std::string dir_;
  TestCertificateAuthority ca_;
  bool tls_clients_ = true;
  std::unique_ptr<ShardingPlan> plan_;
  std::unique_ptr<ParameterServerCore> core_;
  std::unique_ptr<CallerAuthenticator> authenticator_;
  std::unique_ptr<ParameterService> service_;
  StartedServer server_;
};

const ClientIdentity kChief{"worker-0"};
const ClientIdentity kWorker1{"worker-1"};
const ClientIdentity kMonitor{"monitor"};

TEST_F(SecureParameterServiceTest, MembersOfTheClusterWorkAsThemselves) {
  StartServer(/*tls=*/true, /*tokens=*/false);
  ASSERT_TRUE(Pull(kWorker1, PullAs(1)).ok());
  grpc::Status status = Push(kWorker1, PushAs(1));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(core_->shard().version(), 1);
  EXPECT_TRUE(Pull(kMonitor, PullAs(kToolWorkerId)).ok());
  EXPECT_TRUE(Report(kChief, Evaluation()).ok());
  pb::StatusResponse response;
  ASSERT_TRUE(Status(kMonitor, &response).ok());
  EXPECT_EQ(response.transport_security(), "mutual TLS");
  EXPECT_FALSE(response.insecure());
  EXPECT_EQ(response.workers(1).pushes(), 1);
  EXPECT_EQ(response.eval_examples(), 100);
  EXPECT_TRUE(Finish(kChief, FinishAs(0, true)).ok());
  EXPECT_TRUE(core_->finishing());
}

TEST_F(SecureParameterServiceTest, CallersWithoutAValidCertificateAreRefused) {
  StartServer(/*tls=*/true, /*tokens=*/false);
  const ServerSnapshot before = Snapshot();

  // No certificate: the handshake succeeds (health checks stay open), every call of the
  // service is UNAUTHENTICATED.
  const ClientIdentity anonymous{""};
  grpc::Status status = Push(anonymous, PushAs(1));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("no client certificate"));
  pb::StatusResponse response;
  EXPECT_EQ(Status(anonymous, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Pull(anonymous, PullAs(kToolWorkerId)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Finish(anonymous, FinishAs(0, true)).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // A certificate of another CA, an expired one: the handshake fails.
  for (const ClientIdentity& who : {ClientIdentity{"stranger", "stranger-ca"},
                                    ClientIdentity{"stranger"}, ClientIdentity{"expired"}}) {
    status = Push(who, PushAs(1));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << who.certificate << ": " << status.error_message();
    EXPECT_EQ(Finish(who, FinishAs(0, true)).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  // A valid certificate that names no caller of the cluster.
  status = Push(ClientIdentity{"nobody"}, PushAs(1));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("names no caller"));

  ExpectUnchanged(before, Snapshot());
  ASSERT_TRUE(Status(kMonitor, &response).ok());
  EXPECT_EQ(response.requests_unauthenticated(), 5);
}

TEST_F(SecureParameterServiceTest, ClientsCheckTheServersNameAndCa) {
  StartServer(/*tls=*/true, /*tokens=*/false);
  // A client that expects ps-1 (or trusts another CA) does not talk to ps-0.
  ClientIdentity expects_other = kWorker1;
  expects_other.server_name = "ps-1";
  EXPECT_EQ(Pull(expects_other, PullAs(1)).error_code(), grpc::StatusCode::UNAVAILABLE);
  ClientIdentity trusts_other = kWorker1;
  trusts_other.ca = "stranger-ca";
  EXPECT_EQ(Pull(trusts_other, PullAs(1)).error_code(), grpc::StatusCode::UNAVAILABLE);
  // And a plaintext client does not get through either.
  tls_clients_ = false;
  EXPECT_EQ(Pull(kWorker1, PullAs(1)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecureParameterServiceTest, EachRoleDoesOnlyWhatItMay) {
  StartServer(/*tls=*/true, /*tokens=*/false);
  ASSERT_TRUE(Push(kWorker1, PushAs(1, 1)).ok());
  const ServerSnapshot before = Snapshot();
  const struct {
    const char* what;
    grpc::Status status;
    const char* message;
  } refusals[] = {
      {"worker-1 pushes as the chief", Push(kWorker1, PushAs(0, 2)),
       "worker-1 may not push as worker 0"},
      {"worker-1 pulls as the chief", Pull(kWorker1, PullAs(0)), "may not pull as worker 0"},
      {"worker-1 ends the training", Finish(kWorker1, FinishAs(1, true)),
       "worker-1 may not end the training"},
      {"worker-1 finishes for the chief", Finish(kWorker1, FinishAs(0, false)),
       "worker-1 may not finish as worker 0"},
      {"worker-1 reports an evaluation", Report(kWorker1, Evaluation()),
       "worker-1 may not report evaluations"},
      {"the monitor pushes", Push(kMonitor, PushAs(1, 3)), "monitor may not push"},
      {"the monitor ends the training", Finish(kMonitor, FinishAs(0, true)),
       "monitor may not finish"},
      {"the monitor reports an evaluation", Report(kMonitor, Evaluation()),
       "monitor may not report evaluations"},
      {"a parameter server pushes", Push(ClientIdentity{"ps-0"}, PushAs(1, 4)),
       "ps-0 may not push"},
  };
  for (const auto& refusal : refusals) {
    EXPECT_EQ(refusal.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << refusal.what << ": " << refusal.status.error_message();
    EXPECT_THAT(refusal.status.error_message(), HasSubstr(refusal.message)) << refusal.what;
  }
  ExpectUnchanged(before, Snapshot());
  pb::StatusResponse response;
  ASSERT_TRUE(Status(kMonitor, &response).ok());
  EXPECT_EQ(response.requests_denied(), 9);
  EXPECT_EQ(response.pushes_invalid(), 0);
  EXPECT_EQ(response.workers(0).seconds_since_last_seen(), -1);  // never impersonated
}

TEST_F(SecureParameterServiceTest, TokensIdentifyCallersAndAreNeverEchoed) {
  tls_clients_ = false;
  StartServer(/*tls=*/false, /*tokens=*/true);
  const ClientIdentity worker1{"", "ca", "ps-0", kSecrets[1][1]};
  const ClientIdentity monitor{"", "ca", "ps-0", kSecrets[2][1]};
  ASSERT_TRUE(Push(worker1, PushAs(1)).ok());
  const ServerSnapshot before = Snapshot();

  grpc::Status status = Push(ClientIdentity{""}, PushAs(1, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("no \"authorization: Bearer <token>\""));
  const std::string wrong = std::string(kSecrets[1][1]).substr(0, 38) + "X";
  status = Push(ClientIdentity{"", "ca", "ps-0", wrong}, PushAs(1, 3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("not one this server accepts"), Not(HasSubstr(wrong))));
  status = Finish(ClientIdentity{"", "ca", "ps-0", wrong}, FinishAs(0, true));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  status = Push(worker1, PushAs(0, 4));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Push(monitor, PushAs(1, 5)).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ExpectUnchanged(before, Snapshot());

  pb::StatusResponse response;
  ASSERT_TRUE(Status(monitor, &response).ok());
  EXPECT_EQ(response.transport_security(), "bearer tokens");
  EXPECT_EQ(response.requests_unauthenticated(), 3);
  EXPECT_EQ(response.requests_denied(), 2);
}

TEST_F(SecureParameterServiceTest, CertificateAndTokenMustNameTheSameCaller) {
  StartServer(/*tls=*/true, /*tokens=*/true);
  ClientIdentity worker1 = kWorker1;
  worker1.token = kSecrets[1][1];
  EXPECT_TRUE(Push(worker1, PushAs(1)).ok());
  ClientIdentity borrowed = kWorker1;  // worker-1's certificate, the monitor's token
  borrowed.token = kSecrets[2][1];
  const grpc::Status status = Pull(borrowed, PullAs(kToolWorkerId));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("certificate names worker-1 but the bearer token monitor"));
  EXPECT_EQ(Push(kWorker1, PushAs(1, 2)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SecureParameterServiceTest, HealthStaysOpenAndReflectionIsOff) {
  StartServer(/*tls=*/true, /*tokens=*/false);
  std::string answer;
  const grpc::Status health =
      RawCall(ClientIdentity{""}, "/grpc.health.v1.Health/Check", "", &answer);
  ASSERT_TRUE(health.ok()) << health.error_message();
  EXPECT_EQ(answer, std::string("\x08\x01", 2));  // SERVING
  // ServerReflectionRequest{list_services: ""}, as one message of the stream.
  const std::string list_services("\x3a\x00", 2);
  EXPECT_EQ(RawCall(kMonitor, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                    list_services, &answer)
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SecureParameterServiceTest, RotatedCertificatesAreTakenWithoutARestart) {
  StartServer(/*tls=*/true, /*tokens=*/false);
  ASSERT_TRUE(Pull(kWorker1, PullAs(1)).ok());
  // A new CA and new certificates for everyone, written over the old files.
  TestCertificateAuthority rotated("rotated cluster CA");
  WriteFile("old-ca.crt", ca_.certificate_pem());
  WriteIdentity("old-worker-1", ca_.Issue("worker-1"));
  WriteFile("ca.crt", rotated.certificate_pem());
  for (const char* name : {"ps-0", "worker-1"}) WriteIdentity(name, rotated.Issue(name));
  // The server re-reads its files within kCertificateRefreshSeconds; until then it may
  // still present the old certificate.
  const absl::Time deadline = absl::Now() + absl::Seconds(3 * kCertificateRefreshSeconds);
  grpc::Status status;
  do {
    absl::SleepFor(absl::Milliseconds(250));
    status = Pull(kWorker1, PullAs(1));
  } while (!status.ok() && absl::Now() < deadline);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // The old identity no longer gets in.
  const grpc::Status old = Pull(ClientIdentity{"old-worker-1", "old-ca"}, PullAs(1));
  EXPECT_EQ(old.error_code(), grpc::StatusCode::UNAVAILABLE) << old.error_message();
}

}  // namespace
}  // namespace mobilenet
