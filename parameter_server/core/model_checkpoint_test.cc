#include "parameter_server/core/model_checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/checkpoint_series.h"
#include "common/class_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

class ModelCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "model_checkpoint_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_.alpha = 0.25f;
    config_.resolution = 32;
    config_.input_channels = 1;
    config_.num_classes = 10;
    arch_ = *BuildArchitecture(config_);
    params_ = BuildParameterLayout(arch_);
    state_ = BuildStateLayout(arch_);
  }

  std::unique_ptr<ParameterShard> MakeShard(const ShardSpec& spec) {
    ParameterShardConfig shard_config;
    shard_config.seed = 7;
    shard_config.learning_rate.examples_per_epoch = 1000;
    return *ParameterShard::Create(params_, state_, spec, shard_config);
  }

  std::string dir_;
  MobileNetConfig config_;
  Architecture arch_;
  ParameterLayout params_, state_;
};

TEST_F(ModelCheckpointTest, ModelConfigRoundTripsAndMissingKeysAreNamed) {
  Checkpoint c;
  config_.shallow = true;
  PutModelConfig(config_, &c);
  auto back = GetModelConfig(c, "x.mnck");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->alpha, 0.25f);
  EXPECT_EQ(back->resolution, 32);
  EXPECT_EQ(back->input_channels, 1);
  EXPECT_EQ(back->num_classes, 10);
  EXPECT_TRUE(back->shallow);
  c.metadata.erase("model.resolution");
  auto missing = GetModelConfig(c, "x.mnck");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("model.resolution"), std::string::npos);
  c.metadata["model.resolution"] = "abc";
  EXPECT_NE(GetModelConfig(c, "x.mnck").status().message().find("abc"), std::string::npos);
}

TEST_F(ModelCheckpointTest, WholeShardRoundTripsThroughAFileAndLoadsAsAModel) {
  auto shard = MakeShard(WholeModelShardSpec(params_, state_));
  const ShardState exported = shard->ExportState();
  Checkpoint c = ShardStateToCheckpoint(exported, config_, params_, state_);
  // Whole tensors keep their names and shapes.
  const CheckpointTensor* w = c.FindTensor("MobilenetV1/Conv2d_0/weights");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (*params_.Find("MobilenetV1/Conv2d_0/weights"))->shape);
  const std::string path = dir_ + "/one.mnck";
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());

  auto restored = CheckpointToShardState(*ReadCheckpoint(path));
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto other = MakeShard(WholeModelShardSpec(params_, state_));
  ASSERT_TRUE(other->RestoreState(*restored).ok());

  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> expected(params_.total_size()), expected_state(state_.total_size());
  shard->Pull(absl::MakeSpan(expected), absl::MakeSpan(expected_state));
  EXPECT_EQ(model->parameters, expected);
  EXPECT_EQ(model->state, expected_state);
  EXPECT_EQ(model->config.num_classes, 10);
}

TEST_F(ModelCheckpointTest, TheWeightAverageRoundTripsWithTensorFlowsName) {
  ParameterShardConfig shard_config;
  shard_config.seed = 7;
  shard_config.learning_rate.examples_per_epoch = 1000;
  shard_config.weight_ema_decay = 0.99f;
  auto shard =
      *ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), shard_config);
  Checkpoint c = ShardStateToCheckpoint(shard->ExportState(), config_, params_, state_);
  const CheckpointTensor* average =
      c.FindTensor("MobilenetV1/Conv2d_0/weights/ExponentialMovingAverage");
  ASSERT_NE(average, nullptr);
  EXPECT_EQ(average->shape, (*params_.Find("MobilenetV1/Conv2d_0/weights"))->shape);
  auto back = CheckpointToShardState(c);
  ASSERT_TRUE(back.ok()) << back.status();
  shard_config.seed = 8;
  auto other =
      *ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), shard_config);
  ASSERT_TRUE(other->RestoreState(*back).ok());
  std::vector<float> expected(params_.total_size()), got(params_.total_size());
  shard->Pull(absl::MakeSpan(expected), {}, WeightsKind::kAverage);
  other->Pull(absl::MakeSpan(got), {}, WeightsKind::kAverage);
  EXPECT_EQ(got, expected);
}

TEST_F(ModelCheckpointTest, LoadModelReadsTheWeightAverageOnRequest) {
  ParameterShardConfig shard_config;
  shard_config.seed = 7;
  shard_config.learning_rate.examples_per_epoch = 1000;
  shard_config.weight_ema_decay = 0.5f;
  auto shard =
      *ParameterShard::Create(params_, state_, WholeModelShardSpec(params_, state_), shard_config);
  const std::vector<float> gradients(shard->parameter_count(), 0.25f);
  auto update = ShardUpdate::Check(*shard, "push", 0, 8, gradients, {});
  ASSERT_TRUE(update.ok()) << update.status();
  ASSERT_TRUE(shard->Apply(*update).ok());
  const std::string path = dir_ + "/average.mnck";
  ASSERT_TRUE(
      WriteCheckpoint(path, ShardStateToCheckpoint(shard->ExportState(), config_, params_, state_))
          .ok());
  std::vector<float> raw(params_.total_size()), average(params_.total_size());
  std::vector<float> state(state_.total_size());
  shard->Pull(absl::MakeSpan(raw), absl::MakeSpan(state));
  shard->Pull(absl::MakeSpan(average), {}, WeightsKind::kAverage);
  ASSERT_NE(raw, average);

  auto loaded = LoadModel(path, WeightsKind::kAverage);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->parameters, average);
  EXPECT_EQ(loaded->state, state);
  EXPECT_EQ(loaded->global_step, 1);
  loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->parameters, raw);

  // A checkpoint written without the average says so.
  const std::string plain = dir_ + "/plain.mnck";
  ASSERT_TRUE(
      WriteCheckpoint(plain, ShardStateToCheckpoint(
                                 MakeShard(WholeModelShardSpec(params_, state_))->ExportState(),
                                 config_, params_, state_))
          .ok());
  auto none = LoadModel(plain, WeightsKind::kAverage);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("holds no weight average"), std::string::npos);
  EXPECT_NE(none.status().message().find("--weights=raw"), std::string::npos);
}

TEST_F(ModelCheckpointTest, FolderOfSlicedShardsAssemblesTheWholeModel) {
  // Two shards splitting the first tensor in the middle, as a parameter-server plan may.
  ShardSpec a, b;
  bool first = true;
  for (const TensorView& v : params_.views()) {
    if (first) {
      a.parameters.push_back({v.name, 0, v.size / 2});
      b.parameters.push_back({v.name, v.size / 2, v.size});
      first = false;
    } else {
      (a.parameters.size() <= b.parameters.size() ? a : b).parameters.push_back({v.name, 0, v.size});
    }
  }
  for (const TensorView& v : state_.views()) a.state.push_back({v.name, 0, v.size});
  auto shard_a = MakeShard(a);
  auto shard_b = MakeShard(b);
  ASSERT_TRUE(CheckpointSeries(dir_, "ps-0-of-2").Save(
      0, ShardStateToCheckpoint(shard_a->ExportState(), config_, params_, state_)).ok());
  ASSERT_TRUE(CheckpointSeries(dir_, "ps-1-of-2").Save(
      0, ShardStateToCheckpoint(shard_b->ExportState(), config_, params_, state_)).ok());

  auto model = LoadModel(dir_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->files.size(), 2u);
  auto whole = MakeShard(WholeModelShardSpec(params_, state_));
  std::vector<float> expected(params_.total_size());
  whole->Pull(absl::MakeSpan(expected), {});
  EXPECT_EQ(model->parameters, expected);  // initialization is independent of the slicing

  // A sliced tensor name round-trips to the same ranges.
  auto state = CheckpointToShardState(
      ShardStateToCheckpoint(shard_b->ExportState(), config_, params_, state_));
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(shard_b->RestoreState(*state).ok());

  // Without the second shard, the load names the uncovered tensor.
  std::filesystem::remove(CheckpointSeries(dir_, "ps-1-of-2").PathForStep(0));
  auto partial = LoadModel(dir_);
  EXPECT_EQ(partial.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(partial.status().message().find("MobilenetV1/"), std::string::npos);
}

TEST_F(ModelCheckpointTest, ErrorsNameThePath) {
  auto missing = LoadModel(dir_ + "/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  auto empty = LoadModel(dir_);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  const std::string junk = dir_ + "/junk.mnck";
  FILE* f = fopen(junk.c_str(), "w");
  fputs("not a checkpoint", f);
  fclose(f);
  auto bad = LoadModel(junk);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("junk.mnck"), std::string::npos);

  Checkpoint c;
  CheckpointTensor t;
  t.name = "x@5:3";
  t.shape = {2};
  t.data = {1, 2};
  c.tensors.push_back(t);
  EXPECT_EQ(CheckpointToShardState(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelCheckpointTest, TheLedgerRoundTripsAndAnOldCheckpointHasItUnattributed) {
  LedgerState ledger;
  ledger.workers = {{3, 192, 4, false}, {2, 128, 2, true}};
  ledger.unattributed_pushes = 1;
  ledger.unattributed_examples = 64;
  ledger.training_complete = true;
  ledger.evaluation = Evaluation{6, 10000, 8765, 0.3456789012345, 1700000000.25};
  Checkpoint c;
  PutLedger(ledger, &c);
  absl::StatusOr<LedgerState> back = GetLedger(c, "x.mnck", 6, 384);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->workers.size(), 2u);
  EXPECT_EQ(back->workers[0].examples, 192);
  EXPECT_EQ(back->workers[0].reported_steps, 4);
  EXPECT_TRUE(back->workers[1].finished);
  EXPECT_EQ(back->unattributed_pushes, 1);
  EXPECT_TRUE(back->training_complete);
  ASSERT_TRUE(back->evaluation.has_value());
  EXPECT_EQ(back->evaluation->correct, 8765);
  EXPECT_EQ(back->evaluation->loss, 0.3456789012345);  // bit for bit
  EXPECT_EQ(back->evaluation->unix_seconds, 1700000000.25);
  EXPECT_EQ(back->evaluation->average_examples, 0);  // none evaluated, none written
  EXPECT_EQ(c.counters.count("evaluation.average_examples"), 0u);

  // The weight average's figures, when evaluated, come back bit for bit too.
  ledger.evaluation->average_examples = 10000;
  ledger.evaluation->average_correct = 8800;
  ledger.evaluation->average_loss = 0.3123456789012;
  Checkpoint with_average;
  PutLedger(ledger, &with_average);
  absl::StatusOr<LedgerState> averaged = GetLedger(with_average, "x.mnck", 6, 384);
  ASSERT_TRUE(averaged.ok()) << averaged.status();
  EXPECT_EQ(averaged->evaluation->average_examples, 10000);
  EXPECT_EQ(averaged->evaluation->average_correct, 8800);
  EXPECT_EQ(averaged->evaluation->average_loss, 0.3123456789012);

  c.counters.erase("ledger.worker.1.examples");
  EXPECT_NE(GetLedger(c, "x.mnck", 6, 384).status().message().find("ledger.worker.1.examples"),
            std::string::npos);

  // A checkpoint written before the ledger existed: all progress unattributed.
  absl::StatusOr<LedgerState> old = GetLedger(Checkpoint(), "old.mnck", 12, 768);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->workers.empty());
  EXPECT_EQ(old->unattributed_pushes, 12);
  EXPECT_EQ(old->unattributed_examples, 768);
}

TEST_F(ModelCheckpointTest, DataLeasesRoundTripAndCorruptOnesAreRefusedNamingTheKey) {
  LedgerState ledger;
  ledger.workers = {{0, 0, 0, false}};
  Checkpoint without;
  PutLedger(ledger, &without);
  absl::StatusOr<LedgerState> none = GetLedger(without, "x.mnck", 0, 0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->data_leases.has_value());

  DataLeaseState leases;
  leases.plan.set_num_examples(60000);
  leases.plan.set_blocks_per_epoch(600);
  leases.plan.set_epochs(10);
  leases.plan.set_seed(0xfedcba9876543210u);  // all 64 bits
  leases.next_block = 1817;
  leases.open_blocks = {3, 1800, 1816};
  leases.blocks_reassigned = 4;
  leases.late_completions = 1;
  ledger.data_leases = leases;
  Checkpoint c;
  PutLedger(ledger, &c);
  EXPECT_EQ(c.metadata.at("leases.open_blocks"), "3,1800,1816");
  absl::StatusOr<LedgerState> back = GetLedger(c, "x.mnck", 0, 0);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->data_leases.has_value());
  EXPECT_EQ(back->data_leases->plan.SerializeAsString(), leases.plan.SerializeAsString());
  EXPECT_EQ(back->data_leases->next_block, 1817);
  EXPECT_EQ(back->data_leases->open_blocks, leases.open_blocks);
  EXPECT_EQ(back->data_leases->blocks_reassigned, 4);
  EXPECT_EQ(back->data_leases->late_completions, 1);

  // Nothing open.
  ledger.data_leases->open_blocks.clear();
  Checkpoint empty_open;
  PutLedger(ledger, &empty_open);
  back = GetLedger(empty_open, "x.mnck", 0, 0);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->data_leases->open_blocks.empty());

  for (const std::string bad : {"3,,5", "3,x", "3, 5", ",", "3,1817", "5,3", "3,3", "+3"}) {
    Checkpoint corrupt = c;
    corrupt.metadata["leases.open_blocks"] = bad;
    const absl::Status status = GetLedger(corrupt, "x.mnck", 0, 0).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("x.mnck")) << bad;
  }
  Checkpoint corrupt = c;
  corrupt.metadata["leases.open_blocks"] = "3,x";
  EXPECT_THAT(std::string(GetLedger(corrupt, "x.mnck", 0, 0).status().message()),
              ::testing::HasSubstr("leases.open_blocks"));
  corrupt = c;
  corrupt.counters["leases.next_block"] = 6001;  // beyond 10 * 600
  EXPECT_EQ(GetLedger(corrupt, "x.mnck", 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  corrupt = c;
  corrupt.counters.erase("leases.epochs");
  EXPECT_THAT(std::string(GetLedger(corrupt, "x.mnck", 0, 0).status().message()),
              ::testing::HasSubstr("leases.epochs"));
  corrupt = c;
  corrupt.counters["leases.blocks_per_epoch"] = int64_t{1} << 40;
  EXPECT_THAT(std::string(GetLedger(corrupt, "x.mnck", 0, 0).status().message()),
              ::testing::HasSubstr("leases.blocks_per_epoch"));
}

TEST_F(ModelCheckpointTest, TheServerCodecKeepsShardAndLedgerAndRefusesAnotherModel) {
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(config_, 2);
  ASSERT_TRUE(plan.ok());
  const ShardCheckpointCodec codec = ModelShardCheckpointCodec(config_, *plan, "rmsprop", 1);
  CoreState state;
  state.shard = MakeShard(plan->shard(1))->ExportState();
  state.ledger.workers = {{0, 0, 0, false}};
  const Checkpoint c = codec.encode(state);
  EXPECT_EQ(c.metadata.at("ps_task"), "1/2");
  absl::StatusOr<CoreState> back = codec.decode(c, "ps-1-of-2-0.mnck");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ledger.workers.size(), 1u);
  EXPECT_EQ(back->shard.tensors.size(), state.shard.tensors.size());

  MobileNetConfig other = config_;
  other.alpha = 0.5f;
  absl::StatusOr<ShardingPlan> other_plan = ShardingPlan::Create(other, 2);
  ASSERT_TRUE(other_plan.ok());
  const absl::Status refused =
      ModelShardCheckpointCodec(other, *other_plan, "rmsprop", 1).decode(c, "p.mnck").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("use another --checkpoint_dir"), std::string::npos);
}

TEST_F(ModelCheckpointTest, SynchronousStepsRoundTripThroughTheCodecAndAFile) {
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(config_, 2);
  ASSERT_TRUE(plan.ok());
  const ShardCheckpointCodec codec = ModelShardCheckpointCodec(config_, *plan, "sgd", 1);
  CoreState state;
  state.shard = MakeShard(plan->shard(1))->ExportState();
  state.ledger.workers = {{0, 0, 0, false}};
  state.ledger.sync_steps = 1234567890123;
  const Checkpoint c = codec.encode(state);
  ASSERT_EQ(c.counters.count("ledger.sync_steps"), 1u);
  EXPECT_EQ(c.counters.at("ledger.sync_steps"), 1234567890123);
  const std::string path = dir_ + "/ps-1-of-2.mnck";
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  absl::StatusOr<CoreState> back = codec.decode(*read, path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ledger.sync_steps, 1234567890123);

  // An asynchronous run writes none and reads back 0.
  state.ledger.sync_steps = 0;
  const Checkpoint async = codec.encode(state);
  EXPECT_EQ(async.counters.count("ledger.sync_steps"), 0u);
  back = codec.decode(async, path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ledger.sync_steps, 0);

  // A negative count is read as written, and refused by the check every restore runs.
  Checkpoint negative = c;
  negative.counters["ledger.sync_steps"] = -3;
  back = codec.decode(negative, "neg.mnck");
  ASSERT_TRUE(back.ok()) << back.status();
  const absl::Status refused = CheckCoreState(*back, plan->state_layout());
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("-3 synchronous steps"), std::string::npos) << refused;
}

TEST_F(ModelCheckpointTest, ClassNamesRoundTripAndInvalidOnesAreRefusedNamingTheFile) {
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(config_, 1);
  ASSERT_TRUE(plan.ok());
  const ShardCheckpointCodec codec = ModelShardCheckpointCodec(config_, *plan, "rmsprop", 0);
  CoreState state;
  state.shard = MakeShard(plan->shard(0))->ExportState();
  state.ledger.workers = {{0, 0, 0, false}};
  state.ledger.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  ASSERT_TRUE(CheckCoreState(state, plan->state_layout()).ok());
  Checkpoint c = codec.encode(state);
  EXPECT_EQ(c.metadata.at(kClassNamesKey),
            "T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\n"
            "Shirt\nSneaker\nBag\nAnkle boot");
  absl::StatusOr<CoreState> back = codec.decode(c, "ckpt-0.mnck");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ledger.class_names, state.ledger.class_names);

  // A whole-model file loads with its names.
  const std::string path = dir_ + "/ckpt-0.mnck";
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());
  absl::StatusOr<LoadedModel> model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->class_names, state.ledger.class_names);

  // No names: none, and still a valid checkpoint.
  Checkpoint unnamed = c;
  unnamed.metadata.erase(kClassNamesKey);
  back = codec.decode(unnamed, "ckpt-0.mnck");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->ledger.class_names.empty());

  for (const auto& [value, problem] : std::vector<std::pair<std::string, std::string>>{
           {"a\nb\nc", "3 class names for a model of 10 classes"},
           {"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\xff", "class name 9 is not valid UTF-8"},
           {"a\nb\n\nd\ne\nf\ng\nh\ni\nj", "class name 2 is empty"}}) {
    Checkpoint bad = c;
    bad.metadata[kClassNamesKey] = value;
    const absl::Status refused = codec.decode(bad, "bad-7.mnck").status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << problem;
    EXPECT_NE(refused.message().find("bad-7.mnck: metadata \"class_names\""), std::string::npos)
        << refused.message();
    EXPECT_NE(refused.message().find(problem), std::string::npos) << refused.message();
    ASSERT_TRUE(WriteCheckpoint(path, bad).ok());
    EXPECT_EQ(LoadModel(path).status().code(), absl::StatusCode::kInvalidArgument) << problem;
  }
}

}  // namespace
}  // namespace mobilenet
