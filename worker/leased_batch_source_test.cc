#include "worker/leased_batch_source.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

constexpr ImageShape kShape{1, 1, 1};

// Serves a block as ShardBatchSource would, with the data-set index as the label and the
// epoch as the image, so a test sees exactly which example of which epoch it got.
class IndexSource : public BatchSource {
 public:
  explicit IndexSource(DataShard shard) : shard_(std::move(shard)), order_(shard_.EpochOrder(0)) {}
  absl::Status NextBatch(int batch_size, float* images, int* labels) override {
    for (int b = 0; b < batch_size; ++b) {
      labels[b] = order_[position_];
      images[b] = static_cast<float>(epoch_);
      if (++position_ == static_cast<int64_t>(order_.size())) SkipTo((epoch_ + 1) * shard_.size());
    }
    return absl::OkStatus();
  }
  ImageShape output_shape() const override { return kShape; }
  int num_classes() const override { return 1; }
  int64_t examples_per_epoch() const override { return shard_.size(); }
  int64_t epoch() const override { return epoch_; }
  int64_t position() const override { return position_; }
  void SkipTo(int64_t examples) override {
    epoch_ = examples / shard_.size();
    position_ = examples % shard_.size();
    order_ = shard_.EpochOrder(epoch_);
  }

 private:
  DataShard shard_;
  std::vector<int> order_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
};

BlockSourceFactory IndexSources() {
  return [](const DataShard& shard) -> absl::StatusOr<std::unique_ptr<BatchSource>> {
    return std::make_unique<IndexSource>(shard);
  };
}

ps::v1::DataPlan Plan(int examples, int blocks, int epochs) {
  ps::v1::DataPlan plan;
  plan.set_num_examples(examples);
  plan.set_blocks_per_epoch(blocks);
  plan.set_epochs(epochs);
  plan.set_seed(7);
  return plan;
}

ps::v1::DataBlock Block(int epoch, int block) {
  ps::v1::DataBlock b;
  b.set_epoch(epoch);
  b.set_block(block);
  return b;
}

ps::v1::LeaseResponse Answer(ps::v1::LeaseOutcome outcome, ps::v1::DataBlock block = {}) {
  ps::v1::LeaseResponse response;
  response.set_outcome(outcome);
  *response.mutable_block() = block;
  return response;
}

// A lease server that grants every block of every epoch in order, then says done, and
// records what each request reported.
struct ScriptedServer {
  ps::v1::DataPlan plan;
  int next = 0;
  std::vector<std::vector<std::pair<int, int>>> reported;  // completed, per request

  LeaseFunction Function() {
    return
        [this](
            const std::vector<ps::v1::DataBlock>& completed,
            const std::vector<ps::v1::DataBlock>& held) -> absl::StatusOr<ps::v1::LeaseResponse> {
          EXPECT_TRUE(held.empty());
          auto& r = reported.emplace_back();
          for (const auto& b : completed) r.emplace_back(b.epoch(), b.block());
          if (next == plan.epochs() * plan.blocks_per_epoch()) return Answer(ps::v1::LEASE_DONE);
          const int g = next++;
          return Answer(ps::v1::LEASE_GRANTED,
                        Block(g / plan.blocks_per_epoch(), g % plan.blocks_per_epoch()));
        };
  }
};

TEST(LeasedBatchSourceTest, TrainsEveryExampleOnceAnEpochThenEnds) {
  ScriptedServer server{Plan(10, 3, 2)};
  LeasedDataOptions options;
  options.plan = server.plan;
  options.examples_per_epoch = 5;
  auto source = LeasedBatchSource::Create(server.Function(), IndexSources(), kShape, 1, options);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_FALSE((*source)->endless());
  std::map<int, std::multiset<int>> seen;  // epoch -> indices
  int batches = 0;
  while (true) {
    float images[4];
    int labels[4];
    const absl::Status status = (*source)->NextBatch(4, images, labels);
    if (absl::IsOutOfRange(status)) break;
    ASSERT_TRUE(status.ok()) << status;
    ++batches;
    for (int i = 0; i < 4; ++i) seen[static_cast<int>(images[i])].insert(labels[i]);
  }
  // 20 examples in 5 batches of 4: exactly the two epochs, nothing topped up.
  EXPECT_EQ(batches, 5);
  for (int epoch : {0, 1}) {
    std::multiset<int> expected;
    for (int i = 0; i < 10; ++i) expected.insert(i);
    EXPECT_EQ(seen[epoch], expected) << "epoch " << epoch;
  }
  // Each block reported completed exactly once, with the request after it was handed out.
  std::vector<std::pair<int, int>> all;
  for (const auto& r : server.reported) all.insert(all.end(), r.begin(), r.end());
  EXPECT_EQ(all,
            (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}}));
  EXPECT_EQ((*source)->blocks_completed(), 6);
  EXPECT_EQ((*source)->leases(), 6);
  EXPECT_EQ((*source)->examples_seen(), 20);
  // Ended for good.
  float image;
  int label;
  EXPECT_TRUE(absl::IsOutOfRange((*source)->NextBatch(1, &image, &label)));
}

TEST(LeasedBatchSourceTest, TopsUpTheLastBatchFromTheLastBlock) {
  ScriptedServer server{Plan(10, 2, 1)};
  LeasedDataOptions options;
  options.plan = server.plan;
  auto source = LeasedBatchSource::Create(server.Function(), IndexSources(), kShape, 1, options);
  ASSERT_TRUE(source.ok());
  float images[4];
  int labels[4];
  std::multiset<int> epoch0;
  int topped_up = 0;
  for (int b = 0; b < 3; ++b) {
    ASSERT_TRUE((*source)->NextBatch(4, images, labels).ok());
    for (int i = 0; i < 4; ++i) {
      if (images[i] == 0)
        epoch0.insert(labels[i]);
      else
        ++topped_up;  // the last block's next epoch
    }
  }
  EXPECT_EQ(epoch0.size(), 10u);
  EXPECT_EQ(std::set<int>(epoch0.begin(), epoch0.end()).size(), 10u);
  EXPECT_EQ(topped_up, 2);
  EXPECT_TRUE(absl::IsOutOfRange((*source)->NextBatch(4, images, labels)));
}

TEST(LeasedBatchSourceTest, WaitsWhileTheServerSaysWait) {
  int calls = 0;
  LeaseFunction lease = [&](const std::vector<ps::v1::DataBlock>&,
                            const std::vector<ps::v1::DataBlock>&) {
    ++calls;
    if (calls < 3) return Answer(ps::v1::LEASE_WAIT);
    if (calls == 3) return Answer(ps::v1::LEASE_GRANTED, Block(0, 0));
    return Answer(ps::v1::LEASE_DONE);
  };
  LeasedDataOptions options;
  options.plan = Plan(4, 1, 1);
  options.wait_poll = absl::Milliseconds(1);
  auto source = LeasedBatchSource::Create(lease, IndexSources(), kShape, 1, options);
  ASSERT_TRUE(source.ok());
  float images[4];
  int labels[4];
  ASSERT_TRUE((*source)->NextBatch(4, images, labels).ok());
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(absl::IsOutOfRange((*source)->NextBatch(4, images, labels)));
}

TEST(LeasedBatchSourceTest, StopEndsAWait) {
  std::atomic<bool> stop{false};
  LeaseFunction lease = [&](const std::vector<ps::v1::DataBlock>&,
                            const std::vector<ps::v1::DataBlock>&) {
    stop = true;  // e.g. SIGTERM while the others hold the last blocks
    return Answer(ps::v1::LEASE_WAIT);
  };
  LeasedDataOptions options;
  options.plan = Plan(4, 1, 1);
  options.stop = &stop;
  auto source = LeasedBatchSource::Create(lease, IndexSources(), kShape, 1, options);
  ASSERT_TRUE(source.ok());
  float image;
  int label;
  EXPECT_TRUE(absl::IsCancelled((*source)->NextBatch(1, &image, &label)));
}

TEST(LeasedBatchSourceTest, AFailedLeaseCallKeepsTheCompletedBlockForTheRetry) {
  std::vector<std::vector<int>> reported;
  int calls = 0;
  LeaseFunction lease =
      [&](const std::vector<ps::v1::DataBlock>& completed,
          const std::vector<ps::v1::DataBlock>&) -> absl::StatusOr<ps::v1::LeaseResponse> {
    auto& r = reported.emplace_back();
    for (const auto& b : completed) r.push_back(b.block());
    ++calls;
    if (calls == 1) return Answer(ps::v1::LEASE_GRANTED, Block(0, 0));
    if (calls == 2) return absl::UnavailableError("parameter server 0 unreachable");
    return Answer(ps::v1::LEASE_DONE);
  };
  LeasedDataOptions options;
  options.plan = Plan(4, 2, 1);
  auto source = LeasedBatchSource::Create(lease, IndexSources(), kShape, 1, options);
  ASSERT_TRUE(source.ok());
  float images[2];
  int labels[2];
  ASSERT_TRUE((*source)->NextBatch(2, images, labels).ok());  // all of block 0
  EXPECT_TRUE(absl::IsUnavailable((*source)->NextBatch(2, images, labels)));
  EXPECT_TRUE(absl::IsOutOfRange((*source)->NextBatch(2, images, labels)));
  EXPECT_EQ(reported, (std::vector<std::vector<int>>{{}, {0}, {0}}));
}

TEST(LeasedBatchSourceTest, RefusesALeaseOutsideThePlan) {
  LeaseFunction lease = [](const std::vector<ps::v1::DataBlock>&,
                           const std::vector<ps::v1::DataBlock>&) {
    return Answer(ps::v1::LEASE_GRANTED, Block(0, 5));
  };
  LeasedDataOptions options;
  options.plan = Plan(10, 2, 1);
  auto source = LeasedBatchSource::Create(lease, IndexSources(), kShape, 1, options);
  ASSERT_TRUE(source.ok());
  float image;
  int label;
  const absl::Status status = (*source)->NextBatch(1, &image, &label);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("outside the plan"), std::string::npos) << status;
}

TEST(LeasedBatchSourceTest, CreateChecksThePlan) {
  ScriptedServer server{Plan(10, 11, 1)};
  LeasedDataOptions options;
  options.plan = server.plan;
  EXPECT_FALSE(
      LeasedBatchSource::Create(server.Function(), IndexSources(), kShape, 1, options).ok());
  options.plan = Plan(10, 2, 0);
  EXPECT_FALSE(
      LeasedBatchSource::Create(server.Function(), IndexSources(), kShape, 1, options).ok());
  options.plan = Plan(10, 2, 1);
  options.examples_per_epoch = 0;
  EXPECT_FALSE(
      LeasedBatchSource::Create(server.Function(), IndexSources(), kShape, 1, options).ok());
  options.examples_per_epoch = 1;
  EXPECT_FALSE(LeasedBatchSource::Create(nullptr, IndexSources(), kShape, 1, options).ok());
}

}  // namespace
}  // namespace mobilenet
