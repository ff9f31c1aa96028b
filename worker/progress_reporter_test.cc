#include "worker/progress_reporter.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

std::string ReadAll(FILE* f) {
  fflush(f);
  rewind(f);
  std::string text;
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  return text;
}

TEST(FormatDurationTest, PicksUnits) {
  EXPECT_EQ(FormatDuration(12.4), "12s");
  EXPECT_EQ(FormatDuration(245), "4m05s");
  EXPECT_EQ(FormatDuration(3720), "1h02m");
  EXPECT_EQ(FormatDuration(-1), "?");
}

TEST(ProgressReporterTest, FormatShowsFieldsAndDistributedExtrasOnlyWhenKnown) {
  ProgressSnapshot s;
  s.epoch = 1.5;
  s.total_epochs = 4;
  s.step = 10;
  s.global_step = 10;
  s.images_per_sec = 123.4;
  s.loss = 0.5;
  s.accuracy = 0.75;
  s.learning_rate = 0.01;
  s.eta_seconds = 65;
  EXPECT_EQ(ProgressReporter::Format(s),
            "epoch 1.50/4  step 10  123.4 img/s  loss 0.5000  acc 75.0%  lr 0.01  ETA 1m05s");
  s.global_step = 25;
  s.staleness = 1.5;
  s.push_latency_ms = 3.25;
  EXPECT_NE(ProgressReporter::Format(s).find("global 25  stale 1.5  push 3.2ms"),
            std::string::npos);
  s.elapsed_seconds = 83.4;
  EXPECT_NE(ProgressReporter::Format(s).find("push 3.2ms  ETA 1m05s  elapsed 1m23s"),
            std::string::npos);
}

TEST(ProgressReporterTest, PlainModeWritesWholeLinesRateLimited) {
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  ProgressReporter reporter(f, /*interactive=*/false, absl::Hours(1));
  ProgressSnapshot s;
  reporter.Update(s);
  reporter.Update(s);  // within the interval: dropped
  reporter.Line("eval accuracy 0.9");
  const std::string text = ReadAll(f);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_NE(text.find("eval accuracy 0.9\n"), std::string::npos);
  fclose(f);
}

TEST(ProgressReporterTest, InteractiveModeRewritesOneLineAndClosesItBeforeALine) {
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  ProgressReporter reporter(f, /*interactive=*/true, absl::Seconds(10));
  ProgressSnapshot s;
  reporter.Update(s);
  reporter.Line("done");
  const std::string text = ReadAll(f);
  EXPECT_EQ(text[0], '\r');
  EXPECT_NE(text.find("\ndone\n"), std::string::npos);
  fclose(f);
}

}  // namespace
}  // namespace mobilenet
