#include "common/cluster_spec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

ClusterDescription Flags(const char* ps, const char* workers, const char* job, int task) {
  return ClusterDescriptionFromFlags(ps, workers, job, task);
}

TEST(ParseHostPortTest, AcceptsNamesIpv4AndBracketedIpv6) {
  auto a = ParseHostPort("ps-0.example.com:2222");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "ps-0.example.com");
  EXPECT_EQ(a->port, 2222);
  EXPECT_EQ(a->ToString(), "ps-0.example.com:2222");

  auto b = ParseHostPort("127.0.0.1:1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, 1);

  auto c = ParseHostPort("[::1]:65535");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 65535);
  EXPECT_EQ(c->ToString(), "[::1]:65535");
}

TEST(ParseHostPortTest, RejectsMalformedAddressesNamingThem) {
  for (const char* bad : {"", "host", "host:", ":80", "host:abc", "ho st:80", "::1:80",
                          "[::1]80", "[::1", "[]:80", "host:-1", "host:8o"}) {
    auto parsed = ParseHostPort(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(std::string("\"") + bad + "\""));
  }
}

TEST(ParseHostPortTest, RejectsPortsOutOfRange) {
  for (const char* bad : {"h:0", "h:65536", "h:99999999999"}) {
    auto parsed = ParseHostPort(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("out of range [1, 65535]"));
  }
}

TEST(ResolveClusterSpecTest, NothingGivenIsNotACluster) {
  auto spec = ResolveClusterSpec(Flags("", "", "", -1), nullptr);
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(spec->has_value());
  spec = ResolveClusterSpec(Flags("", "", "", -1), "  ");
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(spec->has_value());
}

TEST(ResolveClusterSpecTest, ParsesTensorFlowStyleFlags) {
  auto spec = ResolveClusterSpec(
      Flags("127.0.0.1:2000,127.0.0.1:2001", "127.0.0.1:3000, 127.0.0.1:3001", "worker", 1),
      nullptr);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->has_value());
  const ClusterSpec& s = **spec;
  EXPECT_EQ(s.num_ps(), 2);
  EXPECT_EQ(s.num_workers(), 2);
  EXPECT_EQ(s.job, JobName::kWorker);
  EXPECT_EQ(s.task_index, 1);
  EXPECT_FALSE(s.is_chief());
  EXPECT_EQ(s.own_address().ToString(), "127.0.0.1:3001");
  EXPECT_EQ(s.PsTargets(), (std::vector<std::string>{"127.0.0.1:2000", "127.0.0.1:2001"}));
  EXPECT_EQ(s.Describe(),
            "worker 1 of 2 (ps: 127.0.0.1:2000,127.0.0.1:2001; workers: "
            "127.0.0.1:3000,127.0.0.1:3001)");
}

TEST(ResolveClusterSpecTest, MissingTaskIndexMeansZero) {
  auto spec = ResolveClusterSpec(Flags("a:1", "b:2", "worker", -1), nullptr);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ((*spec)->task_index, 0);
  EXPECT_TRUE((*spec)->is_chief());
}

TEST(ResolveClusterSpecTest, ReadsTheEnvironmentJson) {
  const char* json = R"({"cluster": {"ps": ["ps0:2222", "ps1:2222"], "worker": ["w0:2222"]},
                          "task": {"type": "ps", "index": 1}})";
  auto spec = ResolveClusterSpec(Flags("", "", "", -1), json);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->has_value());
  EXPECT_EQ((*spec)->job, JobName::kParameterServer);
  EXPECT_EQ((*spec)->task_index, 1);
  EXPECT_EQ((*spec)->own_address().ToString(), "ps1:2222");
  EXPECT_EQ((*spec)->num_workers(), 1);
}

TEST(ResolveClusterSpecTest, FlagsWinOverTheEnvironmentFieldByField) {
  const char* json = R"({"cluster": {"ps": ["ps0:2222"], "worker": ["w0:2222", "w1:2222"]},
                          "task": {"type": "ps", "index": 0}})";
  auto spec = ResolveClusterSpec(Flags("", "", "worker", 1), json);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ((*spec)->job, JobName::kWorker);
  EXPECT_EQ((*spec)->task_index, 1);
  EXPECT_EQ((*spec)->ps_hosts[0].ToString(), "ps0:2222");

  spec = ResolveClusterSpec(Flags("other:1", "", "", -1), json);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ((*spec)->ps_hosts[0].ToString(), "other:1");
  EXPECT_EQ((*spec)->job, JobName::kParameterServer);
}

TEST(ResolveClusterSpecTest, MalformedJsonNamesTheVariable) {
  auto spec = ResolveClusterSpec(Flags("", "", "", -1), "{not json");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("MOBILENET_CLUSTER"));

  spec = ResolveClusterSpec(Flags("", "", "", -1), R"({"clustr": {}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("clustr"));

  spec = ResolveClusterSpec(Flags("", "", "", -1), R"({"cluster": {"ps": "a:1"}})");
  EXPECT_FALSE(spec.ok());

  spec = ResolveClusterSpec(Flags("", "", "", -1),
                            R"({"cluster": {"ps": ["a:1"], "worker": ["b:1"]},
                                "task": {"type": "worker", "index": -1}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("task.index is -1"));
}

TEST(ResolveClusterSpecTest, ErrorsNameTheProblemAndItsSource) {
  struct Case {
    ClusterDescription flags;
    const char* env;
    const char* expected;
  };
  const char* env_bad_worker = R"({"cluster": {"ps": ["a:1"], "worker": ["b:99999"]},
                                   "task": {"type": "worker"}})";
  const Case cases[] = {
      {Flags("", "b:1", "worker", 0), nullptr, "no parameter servers"},
      {Flags("a:1", "", "worker", 0), nullptr, "no workers"},
      {Flags("a:1,", "b:1", "worker", 0), nullptr, "--ps_hosts entry 1"},
      {Flags("a:1", "b", "worker", 0), nullptr, "--worker_hosts entry 0: \"b\" is not host:port"},
      {Flags("a:1", "b:70000", "worker", 0), nullptr, "out of range [1, 65535]"},
      {Flags("a:1", "b:2", "", 0), nullptr, "no job name"},
      {Flags("a:1", "b:2", "chief", 0), nullptr, "--job_name: unknown job name \"chief\""},
      {Flags("a:1,a:2", "b:2", "ps", 2), nullptr,
       "--task_index is 2, out of range: job \"ps\" has 2 task(s), indices 0..1"},
      {Flags("a:1", "b:2,b:3", "worker", 5), nullptr, "job \"worker\" has 2 task(s)"},
      {Flags("a:1,a:1", "b:2", "ps", 0), nullptr,
       "--ps_hosts entry 1 \"a:1\" duplicates --ps_hosts entry 0"},
      {Flags("a:1", "b:2,a:1", "worker", 0), nullptr,
       "--worker_hosts entry 1 \"a:1\" duplicates --ps_hosts entry 0"},
      {Flags("", "", "", -1), env_bad_worker, "MOBILENET_CLUSTER cluster.worker entry 0"},
  };
  for (const Case& c : cases) {
    auto spec = ResolveClusterSpec(c.flags, c.env);
    ASSERT_FALSE(spec.ok()) << c.expected;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(c.expected));
  }
}

TEST(ParameterServerBindAddressTest, OwnEntryUnlessAskedOtherwise) {
  auto spec = ResolveClusterSpec(Flags("10.0.0.1:2222,10.0.0.2:2222", "w:1", "ps", 1), nullptr);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto bind = ParameterServerBindAddress(**spec, "");
  ASSERT_TRUE(bind.ok());
  EXPECT_EQ(*bind, "10.0.0.2:2222");
  bind = ParameterServerBindAddress(**spec, "0.0.0.0:2222");
  ASSERT_TRUE(bind.ok());
  EXPECT_EQ(*bind, "0.0.0.0:2222");
  bind = ParameterServerBindAddress(**spec, "0.0.0.0");
  ASSERT_FALSE(bind.ok());
  EXPECT_THAT(std::string(bind.status().message()), HasSubstr("--bind_address"));

  auto worker = ResolveClusterSpec(Flags("a:1", "w:1", "worker", 0), nullptr);
  ASSERT_TRUE(worker.ok());
  EXPECT_EQ(ParameterServerBindAddress(**worker, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ParseJobNameTest, KnowsBothJobs) {
  EXPECT_EQ(*ParseJobName("ps"), JobName::kParameterServer);
  EXPECT_EQ(*ParseJobName("worker"), JobName::kWorker);
  EXPECT_STREQ(JobNameText(JobName::kParameterServer), "ps");
  EXPECT_FALSE(ParseJobName("PS").ok());
}

}  // namespace
}  // namespace mobilenet
