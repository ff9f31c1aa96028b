#include "worker/error_feedback_residuals.h"

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

constexpr int64_t kCount = 40;

// Two segments of a 50-value model, in the server's order: [30, 50) then [0, 20).
const std::vector<Segment> kSegments = {{30, 0, 20}, {0, 20, 20}};

std::vector<float> Gradients(int step) {
  std::vector<float> values(50);
  for (int i = 0; i < 50; ++i) values[i] = 1e-3f * std::sin(0.7f * i + 1.9f * step) + 0.37f;
  return values;
}

// A server's ledger, as far as error feedback cares: what each request id applied.
class FakeServer {
 public:
  // Applies `bytes` unless `request_id` was applied before; returns the outcome.
  PushOutcome Receive(uint64_t request_id, WireDtype dtype, const std::string& bytes) {
    if (applied_.count(request_id)) return PushOutcome::kDuplicate;
    applied_[request_id] = bytes;
    std::vector<float> values(kCount);
    DecodeFloats(dtype, bytes.data(), absl::MakeSpan(values));
    for (int64_t i = 0; i < kCount; ++i) total_[i] += values[i];
    return PushOutcome::kApplied;
  }
  const std::vector<double>& total() const { return total_; }
  const std::string& bytes_of(uint64_t request_id) { return applied_[request_id]; }

 private:
  std::map<uint64_t, std::string> applied_;
  std::vector<double> total_ = std::vector<double>(kCount, 0.0);
};

// What the server's total should be: the gradients pushed (in the server's order), less
// the residual the worker still holds.
void ExpectTracks(const std::vector<double>& gradient_total, const FakeServer& server,
                  const std::vector<float>& residual) {
  for (int64_t i = 0; i < kCount; ++i) {
    EXPECT_NEAR(server.total()[i] + residual[i], gradient_total[i], 1e-5) << i;
  }
}

void AddInServerOrder(const std::vector<float>& gradients, std::vector<double>& total) {
  for (const Segment& segment : kSegments) {
    for (int64_t k = 0; k < segment.size; ++k) {
      total[segment.shard_offset + k] += gradients[segment.flat_offset + k];
    }
  }
}

class ErrorFeedbackResidualsTest : public ::testing::TestWithParam<WireDtype> {
 protected:
  WireDtype dtype() const { return GetParam(); }
  std::string Buffer() const { return std::string(kCount * BytesPerValue(dtype()), '\0'); }
};

TEST_P(ErrorFeedbackResidualsTest, AppliedPushesLeaveTheirResidualForTheNext) {
  ErrorFeedbackResiduals residuals({kCount});
  FakeServer server;
  std::vector<double> gradient_total(kCount, 0.0);
  for (int step = 0; step < 50; ++step) {
    const std::vector<float> gradients = Gradients(step);
    std::string bytes = Buffer();
    ErrorFeedbackResiduals::Pending pending =
        residuals.Encode(0, step + 1, dtype(), gradients, kSegments, bytes.data());
    // The bytes carry the gradients plus the residual taken, less the residual left.
    std::vector<float> sent(kCount);
    DecodeFloats(dtype(), bytes.data(), absl::MakeSpan(sent));
    for (const Segment& segment : kSegments) {
      for (int64_t k = 0; k < segment.size; ++k) {
        const int64_t i = segment.shard_offset + k;
        const float sum = gradients[segment.flat_offset + k] + pending.taken[i];
        ASSERT_EQ(sent[i] + pending.left[i], sum) << step << " " << i;
      }
    }
    residuals.Settle(std::move(pending), server.Receive(step + 1, dtype(), bytes));
    AddInServerOrder(gradients, gradient_total);
  }
  ExpectTracks(gradient_total, server, residuals.Residual(0));
  if (dtype() != WireDtype::kFloat32) {
    // Without feedback, 50 pushes of ~0.37 rounded alike would be off by far more.
    double worst = 0;
    for (float r : residuals.Residual(0)) worst = std::max(worst, std::abs(double(r)));
    EXPECT_GT(worst, 0.0);
    EXPECT_LT(worst, 1e-3);
  }
}

TEST_P(ErrorFeedbackResidualsTest, ARefusedPushKeepsTheResidualItTook) {
  ErrorFeedbackResiduals residuals({kCount});
  FakeServer server;
  std::string bytes = Buffer();
  ErrorFeedbackResiduals::Pending first =
      residuals.Encode(0, 1, dtype(), Gradients(0), kSegments, bytes.data());
  residuals.Settle(std::move(first), server.Receive(1, dtype(), bytes));
  const std::vector<float> before = residuals.Residual(0);
  ErrorFeedbackResiduals::Pending refused =
      residuals.Encode(0, 2, dtype(), Gradients(1), kSegments, bytes.data());
  residuals.Settle(std::move(refused), PushOutcome::kNotApplied);
  EXPECT_EQ(residuals.Residual(0), before);
}

TEST_P(ErrorFeedbackResidualsTest, ARetryOfAnAppliedPushAddsItsResidualOnce) {
  ErrorFeedbackResiduals residuals({kCount});
  FakeServer server;
  std::vector<double> gradient_total(kCount, 0.0);
  const std::vector<float> gradients = Gradients(0);
  std::string bytes = Buffer();
  ErrorFeedbackResiduals::Pending pending =
      residuals.Encode(0, 7, dtype(), gradients, kSegments, bytes.data());
  residuals.Settle(std::move(pending), server.Receive(7, dtype(), bytes));
  AddInServerOrder(gradients, gradient_total);
  const std::vector<float> after_first = residuals.Residual(0);
  // The same request again (e.g. the trainer resending it): a duplicate, nothing changes.
  std::string again = Buffer();
  pending = residuals.Encode(0, 7, dtype(), gradients, kSegments, again.data());
  residuals.Settle(std::move(pending), server.Receive(7, dtype(), again));
  EXPECT_EQ(residuals.Residual(0), after_first);
  ExpectTracks(gradient_total, server, residuals.Residual(0));
}

TEST_P(ErrorFeedbackResidualsTest, APushAppliedWithoutTheWorkerKnowingCountsOnce) {
  ErrorFeedbackResiduals residuals({kCount});
  FakeServer server;
  std::vector<double> gradient_total(kCount, 0.0);
  // Step 1 applied normally, so that a residual is carried.
  std::string bytes = Buffer();
  ErrorFeedbackResiduals::Pending pending =
      residuals.Encode(0, 1, dtype(), Gradients(0), kSegments, bytes.data());
  residuals.Settle(std::move(pending), server.Receive(1, dtype(), bytes));
  AddInServerOrder(Gradients(0), gradient_total);
  // Step 2: the server applies it but the answer is lost (the call fails).
  const std::vector<float> gradients = Gradients(1);
  pending = residuals.Encode(0, 2, dtype(), gradients, kSegments, bytes.data());
  ASSERT_EQ(server.Receive(2, dtype(), bytes), PushOutcome::kApplied);
  residuals.Settle(std::move(pending), PushOutcome::kNotApplied);
  AddInServerOrder(gradients, gradient_total);
  // Resent with the same id: the same bytes (same residual), answered as a duplicate, and
  // the residual is what the applied attempt left.
  std::string resent = Buffer();
  pending = residuals.Encode(0, 2, dtype(), gradients, kSegments, resent.data());
  EXPECT_EQ(resent, server.bytes_of(2));
  residuals.Settle(std::move(pending), server.Receive(2, dtype(), resent));
  ExpectTracks(gradient_total, server, residuals.Residual(0));
  // And the next push carries on from there.
  pending = residuals.Encode(0, 3, dtype(), Gradients(2), kSegments, bytes.data());
  residuals.Settle(std::move(pending), server.Receive(3, dtype(), bytes));
  AddInServerOrder(Gradients(2), gradient_total);
  ExpectTracks(gradient_total, server, residuals.Residual(0));
}

TEST_P(ErrorFeedbackResidualsTest, ConcurrentPushesBothLeaveTheirResiduals) {
  ErrorFeedbackResiduals residuals({kCount});
  FakeServer server;
  std::vector<double> gradient_total(kCount, 0.0);
  std::string first_bytes = Buffer(), second_bytes = Buffer();
  ErrorFeedbackResiduals::Pending first =
      residuals.Encode(0, 1, dtype(), Gradients(0), kSegments, first_bytes.data());
  ErrorFeedbackResiduals::Pending second =
      residuals.Encode(0, 2, dtype(), Gradients(1), kSegments, second_bytes.data());
  residuals.Settle(std::move(second), server.Receive(2, dtype(), second_bytes));
  residuals.Settle(std::move(first), server.Receive(1, dtype(), first_bytes));
  AddInServerOrder(Gradients(0), gradient_total);
  AddInServerOrder(Gradients(1), gradient_total);
  ExpectTracks(gradient_total, server, residuals.Residual(0));
}

INSTANTIATE_TEST_SUITE_P(EveryFormat, ErrorFeedbackResidualsTest,
                         ::testing::Values(WireDtype::kFloat32, WireDtype::kBfloat16,
                                           WireDtype::kFloat16),
                         [](const ::testing::TestParamInfo<WireDtype>& info) {
                           return std::string(WireDtypeName(info.param));
                         });

}  // namespace
}  // namespace mobilenet
