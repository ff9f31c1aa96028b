#include "parameter_server/core/shard_checkpointer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/flat_checkpoint_codec_for_test.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

ShardCheckpointCodec FlatCodec() { return FlatCheckpointCodecForTest("tiny"); }

class ShardCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("shard_checkpointer_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::CreateForLayouts(params_, state_, 2, "tiny");
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = std::make_unique<ShardingPlan>(*plan);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Server 1 of the two-server plan, in a cluster of 2 workers.
  std::unique_ptr<ParameterServerCore> MakeCore() {
    ParameterShardConfig config;
    config.seed = 3;
    config.optimizer.kind = OptimizerKind::kSgd;
    config.learning_rate.initial_learning_rate = 0.5f;
    config.learning_rate.decay_factor = 1.0f;
    config.learning_rate.examples_per_epoch = 100;
    CoreOptions options;
    options.shard_index = 1;
    options.num_workers = 2;
    auto core = ParameterServerCore::Create(*plan_, config, options);
    EXPECT_TRUE(core.ok()) << core.status();
    return std::move(*core);
  }

  // One push of gradient `g` everywhere from `worker`, computed from the current version.
  void PushOnce(ParameterServerCore& core, float g, uint64_t request_id, int worker = 0) {
    const std::vector<float> gradients(core.parameter_count(), g);
    ps::v1::PushRequest push;
    push.set_plan_fingerprint(plan_->fingerprint());
    push.set_shard_index(1);
    push.set_worker_id(worker);
    push.set_request_id(request_id);
    push.set_computed_from_version(core.shard().version());
    push.set_example_count(10);
    push.set_gradients(std::string(reinterpret_cast<const char*>(gradients.data()),
                                   gradients.size() * sizeof(float)));
    ps::v1::PushResponse response;
    ASSERT_TRUE(core.Push(Caller::Trusted(), push, response).ok());
  }

  static std::vector<float> Weights(const ParameterServerCore& core) {
    std::vector<float> w(core.parameter_count());
    core.shard().Pull(absl::MakeSpan(w), {});
    return w;
  }

  std::unique_ptr<ShardCheckpointer> MakeCheckpointer(ParameterServerCore* core, int keep = 3,
                                                      bool allow_fresh_start = false,
                                                      ShardCheckpointCodec codec = FlatCodec()) {
    ShardCheckpointerOptions options;
    options.directory = dir_.string();
    options.prefix = ShardCheckpointPrefix(1, 2);
    options.keep_last = keep;
    options.allow_fresh_start = allow_fresh_start;
    return std::make_unique<ShardCheckpointer>(core, std::move(codec), options);
  }

  // Overwrites one byte in the middle of `path`.
  static void Corrupt(const std::string& path) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  void WriteGarbage(const std::string& name) {
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / name) << "not a checkpoint at all";
  }
  std::vector<std::string> FileNames() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  ParameterLayout params_ = TinyParameters();
  ParameterLayout state_ = TinyState();
  std::unique_ptr<ShardingPlan> plan_;
  std::filesystem::path dir_;
};

TEST_F(ShardCheckpointerTest, PrefixNamesTaskAndCount) {
  EXPECT_EQ(ShardCheckpointPrefix(1, 2), "ps-1-of-2");
}

TEST_F(ShardCheckpointerTest, AnEmptyFolderIsAFreshStart) {
  auto core = MakeCore();
  auto restored = MakeCheckpointer(core.get())->Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(restored->path.empty());
  EXPECT_TRUE(restored->set_aside.empty());
}

TEST_F(ShardCheckpointerTest, SaveThenRestoreIntoAFreshCoreRoundTripsShardAndLedger) {
  auto core = MakeCore();
  PushOnce(*core, 1.0f, 1, /*worker=*/0);
  PushOnce(*core, -0.5f, 2, /*worker=*/1);
  auto checkpointer = MakeCheckpointer(core.get());
  auto saved = checkpointer->Save();
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_TRUE(saved->written);
  EXPECT_EQ(saved->step, 2);
  EXPECT_EQ(saved->path, (dir_ / "ps-1-of-2-2.mnck").string());

  auto fresh = MakeCore();
  ASSERT_NE(Weights(*fresh), Weights(*core));
  auto restorer = MakeCheckpointer(fresh.get());
  auto restored = restorer->Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 2);
  EXPECT_EQ(restored->examples_seen, 20);
  EXPECT_EQ(restored->path, saved->path);
  EXPECT_EQ(Weights(*fresh), Weights(*core));
  const ps::v1::StatusResponse status = fresh->GetStatus();
  EXPECT_EQ(status.workers(0).pushes(), 1);
  EXPECT_EQ(status.workers(1).examples(), 10);
  // Nothing changed since the restore: no new file.
  auto again = restorer->Save();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->written);
  EXPECT_EQ(again->path, saved->path);
}

TEST_F(ShardCheckpointerTest, SavesOnlyWhenChangedUnlessForcedAndKeepsTheNewest) {
  auto core = MakeCore();
  auto checkpointer = MakeCheckpointer(core.get(), /*keep=*/2);
  ASSERT_TRUE(checkpointer->Save()->written);  // step 0: nothing written before
  EXPECT_FALSE(checkpointer->Save()->written);
  EXPECT_TRUE(checkpointer->Save(/*force=*/true)->written);
  for (uint64_t i = 1; i <= 3; ++i) {
    PushOnce(*core, 0.1f, i);
    ASSERT_TRUE(checkpointer->Save()->written);
  }
  auto files = checkpointer->series().List();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].step, 2);
  EXPECT_EQ((*files)[1].step, 3);
}

TEST_F(ShardCheckpointerTest, AFinishOrAnEvaluationAtTheSameStepIsWrittenToo) {
  auto core = MakeCore();
  PushOnce(*core, 1.0f, 1);
  auto checkpointer = MakeCheckpointer(core.get());
  ASSERT_TRUE(checkpointer->Save()->written);
  // No push after the periodic checkpoint, but the end of the training: the final
  // checkpoint must hold it (a restart would otherwise wait for finished workers).
  ps::v1::FinishRequest finish;
  finish.set_plan_fingerprint(plan_->fingerprint());
  finish.set_worker_id(1);
  ASSERT_TRUE(core->Finish(Caller::Trusted(), finish).ok());
  auto saved = checkpointer->Save();
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_TRUE(saved->written);
  EXPECT_EQ(saved->step, 1);
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan_->fingerprint());
  report.set_worker_id(0);
  report.set_examples(10);
  report.set_correct(7);
  ASSERT_TRUE(core->ReportEvaluation(Caller::Trusted(), report).ok());
  EXPECT_TRUE(checkpointer->Save()->written);
  EXPECT_FALSE(checkpointer->Save()->written);

  auto fresh = MakeCore();
  ASSERT_TRUE(MakeCheckpointer(fresh.get())->Restore().ok());
  const ps::v1::StatusResponse status = fresh->GetStatus();
  EXPECT_TRUE(status.workers(1).finished());
  EXPECT_EQ(status.eval_examples(), 10);
  EXPECT_EQ(status.global_step(), 1);
}

TEST_F(ShardCheckpointerTest, ACorruptNewestFileIsSetAsideAndTheOlderOneRestored) {
  auto core = MakeCore();
  auto checkpointer = MakeCheckpointer(core.get());
  PushOnce(*core, 1.0f, 1);
  ASSERT_TRUE(checkpointer->Save().ok());
  const std::vector<float> at_step1 = Weights(*core);
  PushOnce(*core, 1.0f, 2);
  auto newest = checkpointer->Save();
  ASSERT_TRUE(newest.ok());
  Corrupt(newest->path);

  auto fresh = MakeCore();
  auto restored = MakeCheckpointer(fresh.get())->Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 1);
  EXPECT_EQ(Weights(*fresh), at_step1);
  ASSERT_EQ(restored->set_aside.size(), 1u);
  EXPECT_THAT(restored->set_aside[0], HasSubstr("ps-1-of-2-2.mnck"));
  EXPECT_THAT(restored->set_aside[0], HasSubstr("set aside as"));
  // Renamed, never deleted.
  EXPECT_THAT(FileNames(), ::testing::ElementsAre("ps-1-of-2-1.mnck", "ps-1-of-2-2.mnck.corrupt"));
}

TEST_F(ShardCheckpointerTest, AReadableButRefusedNewestFileFallsBackToo) {
  // A checkpoint whose CRCs are fine but whose state breaks the invariants (written by
  // an older build, say): the shard's mean square is infinite.
  auto core = MakeCore();
  PushOnce(*core, 1.0f, 1);
  ASSERT_TRUE(MakeCheckpointer(core.get())->Save().ok());
  ShardCheckpointCodec poisoning = FlatCodec();
  poisoning.encode = [encode = FlatCodec().encode](const CoreState& state) {
    CoreState bad = state;
    bad.shard.tensors[0].values[0] = std::numeric_limits<float>::infinity();
    return encode(bad);
  };
  // The poisoning codec writes without checks (CheckCoreState runs on the state it is
  // given, which is fine; the file it writes is not).
  PushOnce(*core, 1.0f, 2);
  ASSERT_TRUE(MakeCheckpointer(core.get(), 3, false, poisoning)->Save().ok());

  auto fresh = MakeCore();
  auto restored = MakeCheckpointer(fresh.get())->Restore();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 1);
  ASSERT_EQ(restored->set_aside.size(), 1u);
  EXPECT_THAT(restored->set_aside[0], HasSubstr("ps-1-of-2-2.mnck: "));
  EXPECT_THAT(restored->set_aside[0], HasSubstr("is inf"));
  EXPECT_THAT(FileNames(), ::testing::ElementsAre("ps-1-of-2-1.mnck", "ps-1-of-2-2.mnck.corrupt"));
}

TEST_F(ShardCheckpointerTest, WhenEveryFileIsRefusedAFreshStartMustBeAskedFor) {
  WriteGarbage("ps-1-of-2-900.mnck");
  WriteGarbage("ps-1-of-2-901.mnck");
  WriteGarbage("ps-0-of-2-5.mnck");  // another server's series is not looked at
  auto core = MakeCore();
  auto restored = MakeCheckpointer(core.get())->Restore();
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(restored.status().message(), HasSubstr("--allow_fresh_start"));
  EXPECT_THAT(restored.status().message(), HasSubstr("ps-1-of-2-901.mnck.corrupt"));
  EXPECT_THAT(FileNames(), ::testing::ElementsAre("ps-0-of-2-5.mnck", "ps-1-of-2-900.mnck.corrupt",
                                                  "ps-1-of-2-901.mnck.corrupt"));
  // A second start still refuses: the set-aside files are the evidence.
  EXPECT_FALSE(MakeCheckpointer(core.get())->Restore().ok());

  // Asked for, it starts from step 0; its own new checkpoints are kept (the refused ones,
  // with their higher steps, no longer count for the retention).
  auto checkpointer = MakeCheckpointer(core.get(), /*keep=*/2, /*allow_fresh_start=*/true);
  auto fresh_start = checkpointer->Restore();
  ASSERT_TRUE(fresh_start.ok()) << fresh_start.status();
  EXPECT_TRUE(fresh_start->path.empty());
  PushOnce(*core, 1.0f, 1);
  auto first = checkpointer->Save();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(std::filesystem::exists(first->path));
  PushOnce(*core, 1.0f, 2);
  ASSERT_TRUE(checkpointer->Save().ok());
  EXPECT_THAT(FileNames(),
              ::testing::ElementsAre("ps-0-of-2-5.mnck", "ps-1-of-2-1.mnck", "ps-1-of-2-2.mnck",
                                     "ps-1-of-2-900.mnck.corrupt", "ps-1-of-2-901.mnck.corrupt"));
  // And the next start restores them without being asked.
  auto next = MakeCore();
  auto resumed = MakeCheckpointer(next.get())->Restore();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->step, 2);
}

TEST_F(ShardCheckpointerTest, ACheckpointOfAnotherModelStopsTheRestoreAndStaysInPlace) {
  auto core = MakeCore();
  PushOnce(*core, 1.0f, 1);
  ShardCheckpointer writer(core.get(), FlatCheckpointCodecForTest("huge"),
                           {dir_.string(), ShardCheckpointPrefix(1, 2), 3, false});
  ASSERT_TRUE(writer.Save().ok());

  auto fresh = MakeCore();
  const std::vector<float> before = Weights(*fresh);
  auto restored = MakeCheckpointer(fresh.get())->Restore();
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(restored.status().message()), HasSubstr("ps-1-of-2-1.mnck"));
  EXPECT_EQ(Weights(*fresh), before);
  EXPECT_EQ(fresh->shard().version(), 0);
  EXPECT_THAT(FileNames(), ::testing::ElementsAre("ps-1-of-2-1.mnck"));
}

TEST_F(ShardCheckpointerTest, PeriodicThreadWritesChangesAndStopsPromptly) {
  auto core = MakeCore();
  auto checkpointer = MakeCheckpointer(core.get());
  std::atomic<int> written{0};
  std::atomic<int> calls{0};
  checkpointer->StartPeriodic(absl::Milliseconds(10),
                              [&](const absl::StatusOr<SavedShardCheckpoint>& saved) {
                                ASSERT_TRUE(saved.ok()) << saved.status();
                                calls++;
                                if (saved->written) written++;
                              });
  // The first period writes step 0; later ones write only after a push.
  for (int i = 0; i < 500 && written < 1; ++i) absl::SleepFor(absl::Milliseconds(5));
  PushOnce(*core, 1.0f, 1);
  for (int i = 0; i < 500 && written < 2; ++i) absl::SleepFor(absl::Milliseconds(5));
  for (int i = 0; i < 500 && calls < 5; ++i) absl::SleepFor(absl::Milliseconds(5));
  const absl::Time stop_start = absl::Now();
  checkpointer->StopPeriodic();
  EXPECT_LT(absl::Now() - stop_start, absl::Seconds(2));
  EXPECT_EQ(written.load(), 2);
  EXPECT_GE(calls.load(), 5);
  const int calls_at_stop = calls;
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(calls.load(), calls_at_stop);
  checkpointer->StopPeriodic();  // idempotent
  auto files = checkpointer->series().List();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ(files->back().step, 1);
}

TEST_F(ShardCheckpointerTest, StopWakesALongInterval) {
  auto core = MakeCore();
  auto checkpointer = MakeCheckpointer(core.get());
  int calls = 0;
  checkpointer->StartPeriodic(absl::Hours(1),
                              [&](const absl::StatusOr<SavedShardCheckpoint>&) { ++calls; });
  const absl::Time start = absl::Now();
  checkpointer.reset();  // the destructor stops the thread
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace mobilenet
