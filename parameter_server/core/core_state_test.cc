#include "parameter_server/core/core_state.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parameter_server/core/tiny_layouts_for_test.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// A consistent state: 3 pushes of 4 examples, two by worker 0 and one by worker 1.
CoreState Consistent() {
  CoreState state;
  state.shard.version = 3;
  state.shard.examples_seen = 12;
  state.shard.tensors = {{"a/weights", 0, 2, {0.5f, -0.5f}},
                         {"a/weights/rms", 0, 2, {1.0f, 0.0f}},
                         {"a/weights/momentum", 0, 2, {-0.1f, 0.1f}},
                         {"a/BatchNorm/moving_mean", 0, 3, {-1.0f, 0.0f, 1.0f}},
                         {"a/BatchNorm/moving_variance", 0, 3, {1.0f, 0.0f, 2.0f}}};
  state.ledger.workers = {{2, 8, 2, false}, {1, 4, 1, true}};
  return state;
}

TEST(CoreStateTest, AConsistentStatePasses) {
  EXPECT_TRUE(CheckCoreState(Consistent(), TinyState()).ok());
  // A checkpoint that kept no per-worker progress: all of it unattributed.
  CoreState legacy = Consistent();
  legacy.ledger.workers.clear();
  legacy.ledger.unattributed_pushes = 3;
  legacy.ledger.unattributed_examples = 12;
  EXPECT_TRUE(CheckCoreState(legacy, TinyState()).ok());
}

TEST(CoreStateTest, EveryViolationIsNamed) {
  struct Case {
    CoreState state;
    const char* message;
  };
  std::vector<Case> cases;
  auto with = [&](const char* message, auto change) {
    CoreState state = Consistent();
    change(state);
    cases.push_back({state, message});
  };
  // The counters a 2^62-example push used to leave behind.
  with("version 3 with -9223372036854775807 examples seen",
       [](CoreState& s) { s.shard.examples_seen = -std::numeric_limits<int64_t>::max(); });
  with("version 3 with 4611686018427387904 examples seen",
       [](CoreState& s) { s.shard.examples_seen = int64_t{1} << 62; });
  with("version 3 with 2 examples seen", [](CoreState& s) { s.shard.examples_seen = 2; });
  with("version -1", [](CoreState& s) { s.shard.version = -1; });
  // The slot a 1e30 gradient used to leave behind.
  with("a/weights/rms[1] is inf", [](CoreState& s) {
    s.shard.tensors[1].values[1] = std::numeric_limits<float>::infinity();
  });
  // The weight average (--weight_ema_decay) is held to the same finiteness.
  with("a/weights/ExponentialMovingAverage[1] is nan", [](CoreState& s) {
    s.shard.tensors.push_back({"a/weights/ExponentialMovingAverage", 0, 2, {0.5f, std::nanf("")}});
  });
  with("a/weights[0] is nan", [](CoreState& s) { s.shard.tensors[0].values[0] = std::nanf(""); });
  with("a/weights/rms[0] is -1", [](CoreState& s) { s.shard.tensors[1].values[0] = -1.0f; });
  with("a/BatchNorm/moving_variance[2] is -2",
       [](CoreState& s) { s.shard.tensors[4].values[2] = -2.0f; });
  with("account for 4 pushes and 16 examples, the shard for 3 and 12", [](CoreState& s) {
    s.ledger.unattributed_pushes = 1;
    s.ledger.unattributed_examples = 4;
  });
  with("account for 3 pushes and 13 examples",
       [](CoreState& s) { s.ledger.workers[1].examples = 5; });
  with("worker 1 has -1 pushes", [](CoreState& s) { s.ledger.workers[1].pushes = -1; });
  for (const Case& c : cases) {
    const absl::Status status = CheckCoreState(c.state, TinyState());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
  // A negative moving mean or momentum is fine.
  CoreState negative = Consistent();
  negative.shard.tensors[2].values[0] = -5.0f;
  negative.shard.tensors[3].values[0] = -5.0f;
  EXPECT_TRUE(CheckCoreState(negative, TinyState()).ok());
}

}  // namespace
}  // namespace mobilenet
