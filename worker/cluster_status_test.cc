#include "worker/cluster_status.h"

#include <tuple>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);
double Unix(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

ps::v1::StatusResponse Server(int index, int64_t step, int64_t examples) {
  ps::v1::StatusResponse r;
  r.set_shard_index(index);
  r.set_num_shards(2);
  r.set_plan_fingerprint(0x0123456789abcdefULL);
  r.set_model("alpha=0.25 resolution=28 channels=1 classes=10");
  for (int i = 0; i < 3; ++i) {
    ps::v1::SliceInfo* slice = r.add_slices();
    slice->set_tensor(absl::StrCat("MobilenetV1/t", index, "_", i));
    slice->set_begin(0);
    slice->set_end(100);
  }
  r.set_parameter_bytes(3 * 1024 * 1024);
  r.set_state_bytes(2048);
  r.set_global_step(step);
  r.set_examples_seen(examples);
  r.set_epoch(examples / 60000.0);
  r.set_learning_rate(0.0094f);
  r.set_pushes_applied(step);
  r.set_pushes_rejected_stale(2);
  r.set_pushes_invalid(1);
  r.set_pushes_duplicate(3);
  r.set_staleness_p50(1);
  r.set_staleness_p90(2);
  r.set_staleness_max(7);
  r.set_bytes_in(5LL << 30);
  r.set_bytes_out(4LL << 30);
  r.set_uptime_seconds(302);
  r.set_transport_security("mutual TLS");
  r.set_requests_denied(4 + index);
  r.set_requests_unauthenticated(9);
  r.set_last_checkpoint_unix_seconds(Unix(kNow) - 20);
  r.set_last_checkpoint_step(step - 10);
  r.set_last_checkpoint_path(absl::StrCat("/ckpt/ps-", index, "-of-2-", step - 10, ".mnck"));
  ps::v1::WorkerStatus* chief = r.add_workers();
  chief->set_worker_id(0);
  chief->set_seconds_since_last_seen(0.2 + index);
  chief->set_steps(600 + index);
  chief->set_images_per_sec(400 + index);
  chief->set_pushes(600 + index);
  chief->set_examples(64 * (600 + index));
  ps::v1::WorkerStatus* other = r.add_workers();
  other->set_worker_id(1);
  other->set_seconds_since_last_seen(65);
  other->set_steps(580);
  other->set_images_per_sec(390.5);
  other->set_pushes(580);
  other->set_finished(index == 1);
  return r;
}

std::vector<ParameterServerReport> TwoServers() {
  std::vector<ParameterServerReport> reports;
  ps::v1::StatusResponse a = Server(0, 1234, 78976);
  a.set_eval_examples(10000);
  a.set_eval_accuracy(0.8421);
  a.set_eval_loss(0.4412);
  a.set_eval_step(1200);
  a.set_eval_unix_seconds(Unix(kNow) - 12);
  ps::v1::StatusResponse b = Server(1, 1230, 78720);
  b.set_eval_examples(10000);  // an older report
  b.set_eval_accuracy(0.80);
  b.set_eval_step(1000);
  b.set_eval_unix_seconds(Unix(kNow) - 100);
  reports.push_back({"127.0.0.1:4001", a});
  reports.push_back({"127.0.0.1:4002", b});
  return reports;
}

TEST(SummarizeClusterTest, TakesTheMinimumStepAndTheLatestEvaluation) {
  const ClusterSummary s = SummarizeCluster(TwoServers());
  EXPECT_EQ(s.servers, 2);
  EXPECT_EQ(s.servers_answering, 2);
  EXPECT_EQ(s.global_step, 1230);
  EXPECT_EQ(s.examples_seen, 78720);
  EXPECT_EQ(s.parameter_bytes, 6 * 1024 * 1024);
  EXPECT_TRUE(s.plans_agree);
  EXPECT_FALSE(s.finishing);
  EXPECT_DOUBLE_EQ(s.eval_accuracy, 0.8421);
  EXPECT_EQ(s.eval_step, 1200);
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].worker_id, 0);
  EXPECT_DOUBLE_EQ(s.workers[0].seconds_since_seen, 0.2);  // the freshest server's view
  EXPECT_DOUBLE_EQ(s.workers[0].images_per_sec, 400);
  EXPECT_EQ(s.workers[0].steps, 601);
  EXPECT_FALSE(s.workers[0].finished);
  EXPECT_TRUE(s.workers[1].finished);
}

TEST(SummarizeClusterTest, SkipsUnreachableServersAndNoticesPlanMismatch) {
  std::vector<ParameterServerReport> reports = TwoServers();
  ps::v1::StatusResponse other = Server(1, 5, 5);
  other.set_plan_fingerprint(42);
  reports.push_back({"127.0.0.1:4003", other});
  reports.push_back({"127.0.0.1:4004", absl::UnavailableError("connection refused")});
  const ClusterSummary s = SummarizeCluster(reports);
  EXPECT_EQ(s.servers, 4);
  EXPECT_EQ(s.servers_answering, 3);
  EXPECT_EQ(s.global_step, 5);
  EXPECT_FALSE(s.plans_agree);
}

TEST(FormatClusterStatusTextTest, ShowsEveryFigure) {
  std::vector<ParameterServerReport> reports = TwoServers();
  reports.push_back({"127.0.0.1:4003", absl::UnavailableError("connection refused")});
  const std::string text = FormatClusterStatusText(reports, kNow);
  EXPECT_THAT(text, HasSubstr("2 of 3 parameter servers answering; model alpha=0.25 "
                              "resolution=28 channels=1 classes=10"));
  EXPECT_THAT(text, HasSubstr("Global step 1230  examples 78720  epoch 1.31"));
  EXPECT_THAT(text, HasSubstr("Latest evaluation: accuracy 84.21% (loss 0.4412, 10000 "
                              "examples) at step 1200, 12s ago"));
  // Per server: address, slices, bytes, step, checkpoint, uptime, eval; its push figures.
  EXPECT_THAT(text, HasSubstr("127.0.0.1:4001"));
  EXPECT_THAT(text, HasSubstr("3.0 MB"));
  EXPECT_THAT(text, HasSubstr("step 1224, 20s ago"));
  EXPECT_THAT(text, HasSubstr("5m02s"));
  EXPECT_THAT(text, HasSubstr("84.21%"));
  EXPECT_THAT(text, HasSubstr("1/2/7"));
  EXPECT_THAT(text, HasSubstr("5.0 GB"));
  EXPECT_THAT(text, HasSubstr("127.0.0.1:4003  unreachable: UNAVAILABLE: connection refused"));
  // Workers.
  EXPECT_THAT(text, HasSubstr("0 (chief)"));
  EXPECT_THAT(text, HasSubstr("1m05s ago"));
  EXPECT_THAT(text, HasSubstr("390.5"));
  EXPECT_THAT(text, HasSubstr("finished"));
  EXPECT_THAT(text, Not(HasSubstr("WARNING")));

  // Columns line up: the header's STEP starts where the first row's step does.
  const size_t header = text.find("PS  ADDRESS");
  ASSERT_NE(header, std::string::npos);
  const size_t row = text.find('\n', header) + 1;
  EXPECT_EQ(text.find("STEP", header) - header, text.find("1234", row) - row);
}

TEST(SummarizeClusterTest, AWorkerNotSeenByOneServerTakesTheOthersSightingOrNotYet) {
  std::vector<ParameterServerReport> reports;
  for (int index = 0; index < 2; ++index) {
    ps::v1::StatusResponse r = Server(index, 10, 640);
    ps::v1::WorkerStatus* late = r.add_workers();
    late->set_worker_id(2);
    // Server 0 restarted and has not heard from it yet; server 1 saw it 4 s ago.
    late->set_seconds_since_last_seen(index == 0 ? -1 : 4);
    late->set_examples(64 * (index + 1));
    ps::v1::WorkerStatus* absent = r.add_workers();
    absent->set_worker_id(3);
    absent->set_seconds_since_last_seen(-1);
    reports.push_back({"ps" + std::to_string(index), r});
  }
  const ClusterSummary s = SummarizeCluster(reports);
  ASSERT_EQ(s.workers.size(), 4u);
  EXPECT_DOUBLE_EQ(s.workers[2].seconds_since_seen, 4);
  EXPECT_EQ(s.workers[2].examples, 128);  // the most any server counted
  EXPECT_DOUBLE_EQ(s.workers[3].seconds_since_seen, -1);
  const std::string text = FormatClusterStatusText(reports, kNow);
  EXPECT_THAT(text, HasSubstr("not yet"));
  EXPECT_THAT(text, HasSubstr("EXAMPLES"));
}

TEST(FormatClusterStatusTextTest, ShowsTransportSecurityAndWarnsWhenDeliberatelyInsecure) {
  std::vector<ParameterServerReport> reports = TwoServers();
  std::string text = FormatClusterStatusText(reports, kNow);
  EXPECT_THAT(text, HasSubstr("TRANSPORT SECURITY  DENIED  UNAUTHENTICATED"));
  EXPECT_THAT(text, HasSubstr("1   mutual TLS          5       9"));
  ps::v1::StatusResponse open = *reports[1].status;
  open.set_transport_security("none");
  open.set_insecure(true);
  reports[1].status = open;
  text = FormatClusterStatusText(reports, kNow);
  EXPECT_THAT(text, HasSubstr("none (--insecure)"));
  EXPECT_THAT(text, HasSubstr("WARNING: parameter server(s) 1 listen beyond loopback without "
                              "transport security"));
}

TEST(FormatClusterStatusTextTest, SaysWhenNothingAnswers) {
  std::vector<ParameterServerReport> reports;
  reports.push_back({"h:1", absl::DeadlineExceededError("deadline")});
  const std::string text = FormatClusterStatusText(reports, kNow);
  EXPECT_THAT(text, HasSubstr("0 of 1 parameter servers answering"));
  EXPECT_THAT(text, HasSubstr("unreachable"));
  EXPECT_THAT(text, HasSubstr("none seen yet"));
}

TEST(FormatClusterStatusJsonTest, IsValidJsonWithTheSameFigures) {
  std::vector<ParameterServerReport> reports = TwoServers();
  reports.push_back({"bad\"host:1", absl::UnavailableError("refused\n")});
  const std::string json = FormatClusterStatusJson(reports, kNow);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  google::protobuf::Struct root;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &root).ok()) << json;
  const auto& f = root.fields();
  EXPECT_DOUBLE_EQ(f.at("time").number_value(), 1700000000);
  const auto& summary = f.at("summary").struct_value().fields();
  EXPECT_EQ(summary.at("global_step").number_value(), 1230);
  EXPECT_EQ(summary.at("servers_answering").number_value(), 2);
  EXPECT_DOUBLE_EQ(
      summary.at("evaluation").struct_value().fields().at("accuracy").number_value(), 0.8421);

  const auto& servers = f.at("parameter_servers").list_value().values();
  ASSERT_EQ(servers.size(), 3);
  const auto& ps0 = servers[0].struct_value().fields();
  EXPECT_EQ(ps0.at("address").string_value(), "127.0.0.1:4001");
  EXPECT_TRUE(ps0.at("ok").bool_value());
  EXPECT_EQ(ps0.at("plan_fingerprint").string_value(), "0123456789abcdef");
  EXPECT_EQ(ps0.at("slices").list_value().values_size(), 3);
  EXPECT_EQ(ps0.at("global_step").number_value(), 1234);
  EXPECT_EQ(ps0.at("pushes_rejected").struct_value().fields().at("stale").number_value(), 2);
  EXPECT_EQ(ps0.at("staleness").struct_value().fields().at("max").number_value(), 7);
  EXPECT_EQ(ps0.at("bytes_in").number_value(), static_cast<double>(5LL << 30));
  EXPECT_EQ(ps0.at("last_checkpoint").struct_value().fields().at("step").number_value(), 1224);
  EXPECT_EQ(ps0.at("workers").list_value().values_size(), 2);
  EXPECT_EQ(ps0.at("workers")
                .list_value()
                .values(0)
                .struct_value()
                .fields()
                .at("examples")
                .number_value(),
            64 * 600);
  EXPECT_EQ(ps0.at("transport_security").string_value(), "mutual TLS");
  EXPECT_FALSE(ps0.at("insecure").bool_value());
  EXPECT_EQ(ps0.at("requests_denied").number_value(), 4);
  EXPECT_EQ(ps0.at("requests_unauthenticated").number_value(), 9);
  const auto& down = servers[2].struct_value().fields();
  EXPECT_EQ(down.at("address").string_value(), "bad\"host:1");
  EXPECT_FALSE(down.at("ok").bool_value());
  EXPECT_THAT(down.at("error").string_value(), HasSubstr("refused\n"));

  const auto& workers = f.at("workers").list_value().values();
  ASSERT_EQ(workers.size(), 2);
  EXPECT_EQ(workers[1].struct_value().fields().at("worker_id").number_value(), 1);
  EXPECT_TRUE(workers[1].struct_value().fields().at("finished").bool_value());
}

TEST(FormatClusterStatusJsonTest, NoEvaluationIsNull) {
  std::vector<ParameterServerReport> reports;
  reports.push_back({"h:1", Server(0, 1, 1)});
  google::protobuf::Struct root;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(FormatClusterStatusJson(reports, kNow), &root)
          .ok());
  EXPECT_EQ(root.fields().at("summary").struct_value().fields().at("evaluation").kind_case(),
            google::protobuf::Value::kNullValue);
}

TEST(FormatClusterStatusTest, ShowsTheWeightAverageWhenEvaluated) {
  std::vector<ParameterServerReport> reports = TwoServers();
  for (ParameterServerReport& report : reports) {
    report.status->set_weight_ema_decay(0.999f);
    report.status->set_eval_average_examples(10000);
    report.status->set_eval_average_accuracy(0.8533);
    report.status->set_eval_average_loss(0.4012);
  }
  const ClusterSummary s = SummarizeCluster(reports);
  EXPECT_EQ(s.eval_average_examples, 10000);
  EXPECT_FLOAT_EQ(s.weight_ema_decay, 0.999f);
  EXPECT_THAT(FormatClusterStatusText(reports, kNow),
              HasSubstr("Latest evaluation: accuracy 84.21% (loss 0.4412, 10000 examples) at step "
                        "1200, 12s ago\n  weight average (decay 0.999): accuracy 85.33% (loss "
                        "0.4012)\n"));
  google::protobuf::Struct root;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(FormatClusterStatusJson(reports, kNow), &root)
          .ok());
  const auto& evaluation =
      root.fields().at("summary").struct_value().fields().at("evaluation").struct_value().fields();
  EXPECT_DOUBLE_EQ(evaluation.at("accuracy").number_value(), 0.8421);
  EXPECT_DOUBLE_EQ(
      evaluation.at("weight_average").struct_value().fields().at("accuracy").number_value(),
      0.8533);
  // Without it, the text has no such line and the JSON says null.
  const std::vector<ParameterServerReport> plain = TwoServers();
  EXPECT_THAT(FormatClusterStatusText(plain, kNow), Not(HasSubstr("weight average")));
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(FormatClusterStatusJson(plain, kNow), &root)
          .ok());
  EXPECT_EQ(root.fields()
                .at("summary")
                .struct_value()
                .fields()
                .at("evaluation")
                .struct_value()
                .fields()
                .at("weight_average")
                .kind_case(),
            google::protobuf::Value::kNullValue);
}

// Server 0 of an elastic cluster with two blocks leased and worker 2 gone.
std::vector<ParameterServerReport> ElasticServers() {
  std::vector<ParameterServerReport> reports = TwoServers();
  for (ParameterServerReport& report : reports) report.status->set_max_workers(8);
  ps::v1::StatusResponse& r = *reports[0].status;
  r.set_live_workers(2);
  ps::v1::DataLeaseStatus& d = *r.mutable_data_leases();
  d.mutable_data()->set_num_examples(60000);
  d.mutable_data()->set_blocks_per_epoch(60);
  d.mutable_data()->set_epochs(10);
  d.mutable_data()->set_seed(7);
  d.set_epoch(2);  // 0-based: the third epoch
  d.set_blocks_completed(143);
  d.set_blocks_total(600);
  for (const auto& [worker, block, seconds] :
       {std::make_tuple(0, 17, 4.0), std::make_tuple(4, 18, 1.0)}) {
    ps::v1::DataLeaseStatus::Held* held = d.add_held();
    held->set_worker_id(worker);
    held->mutable_block()->set_epoch(3);
    held->mutable_block()->set_block(block);
    held->set_seconds_held(seconds);
  }
  d.set_blocks_reassigned(3);
  for (int i = 0; i < 7; ++i) {
    ps::v1::MembershipEvent* e = r.add_membership_events();
    e->set_unix_seconds(Unix(kNow) - 100 + i);
    e->set_worker_id(i);
    e->set_kind(ps::v1::MembershipEvent::JOINED);
  }
  ps::v1::MembershipEvent* left = r.add_membership_events();
  left->set_unix_seconds(Unix(kNow) - 10);
  left->set_worker_id(2);
  left->set_kind(ps::v1::MembershipEvent::LEFT);
  left->set_detail("2 data blocks returned");
  return reports;
}

TEST(FormatClusterStatusTextTest, ShowsServer0sDataLeasesAndTheLatestMembershipEvents) {
  const std::string text = FormatClusterStatusText(ElasticServers(), kNow);
  EXPECT_THAT(text, HasSubstr("Elastic workers: up to 8, 2 live\n"));
  EXPECT_THAT(text, HasSubstr("data: epoch 3 of 10, 143/600 blocks trained, 2 leased (worker 0: "
                              "e3 b17 4s, worker 4: e3 b18 1s), 0 returned, 3 reassigned\n"));
  const std::string left =
      absl::FormatTime("%H:%M:%S", kNow - absl::Seconds(10), absl::LocalTimeZone());
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("  worker 2 left ", left, " (2 data blocks returned)\n")));
  EXPECT_THAT(text, HasSubstr("  worker 6 joined "));
  EXPECT_THAT(text, HasSubstr("  worker 3 joined "));
  EXPECT_THAT(text, Not(HasSubstr("worker 2 joined")));  // only the latest 5
  EXPECT_THAT(FormatClusterStatusText(TwoServers(), kNow), Not(HasSubstr("Elastic")));
}

TEST(FormatClusterStatusTextTest, FormatsEventsAndLeasesWithoutAPlan) {
  ps::v1::MembershipEvent e;
  e.set_unix_seconds(
      Unix(absl::FromCivil(absl::CivilSecond(2026, 1, 2, 12, 3, 5), absl::UTCTimeZone())));
  e.set_worker_id(4);
  e.set_kind(ps::v1::MembershipEvent::FINISHED);
  EXPECT_EQ(FormatMembershipEvent(e, absl::UTCTimeZone()), "worker 4 finished 12:03:05");
  EXPECT_EQ(FormatDataLeases(ps::v1::DataLeaseStatus()), "data: no worker has asked for data yet");
}

TEST(FormatClusterStatusJsonTest, IncludesDataLeasesAndMembershipEvents) {
  const std::string json = FormatClusterStatusJson(ElasticServers(), kNow);
  google::protobuf::Struct root;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &root).ok()) << json;
  const auto& servers = root.fields().at("parameter_servers").list_value().values();
  const auto& ps0 = servers[0].struct_value().fields();
  EXPECT_EQ(ps0.at("max_workers").number_value(), 8);
  const auto& leases = ps0.at("data_leases").struct_value().fields();
  EXPECT_EQ(leases.at("blocks_completed").number_value(), 143);
  EXPECT_EQ(leases.at("plan").struct_value().fields().at("epochs").number_value(), 10);
  ASSERT_EQ(leases.at("held").list_value().values_size(), 2);
  EXPECT_EQ(leases.at("held")
                .list_value()
                .values(1)
                .struct_value()
                .fields()
                .at("worker_id")
                .number_value(),
            4);
  const auto& events = ps0.at("membership_events").list_value().values();
  ASSERT_EQ(events.size(), 8);
  EXPECT_EQ(events[7].struct_value().fields().at("kind").string_value(), "left");
  EXPECT_EQ(events[7].struct_value().fields().at("detail").string_value(),
            "2 data blocks returned");
  const auto& ps1 = servers[1].struct_value().fields();
  EXPECT_EQ(ps1.at("data_leases").kind_case(), google::protobuf::Value::kNullValue);
}

TEST(FormatBytesTest, UsesBinaryUnits) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KB");
  EXPECT_EQ(FormatBytes(17 * 1024 * 1024), "17.0 MB");
  EXPECT_EQ(FormatBytes(3LL << 30), "3.0 GB");
}

}  // namespace
}  // namespace mobilenet
