#include "common/checkpoint_series.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mobilenet {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class CheckpointSeriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "checkpoint_series_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  static void WriteBytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), bytes.size());
  }

  static std::vector<int64_t> Steps(const CheckpointSeries& series) {
    absl::StatusOr<std::vector<CheckpointFile>> files = series.List();
    EXPECT_TRUE(files.ok()) << files.status();
    std::vector<int64_t> steps;
    if (files.ok()) {
      for (const CheckpointFile& f : *files) steps.push_back(f.step);
    }
    return steps;
  }

  std::vector<std::string> FileNames() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir_;
};

Checkpoint AtStep(int64_t step) {
  Checkpoint c;
  c.counters["global_step"] = step;
  c.tensors.push_back({"w", {2}, {static_cast<float>(step), 1.0f}});
  return c;
}

TEST_F(CheckpointSeriesTest, PathForStep) {
  CheckpointSeries series("/some/dir", "shard-3");
  EXPECT_EQ(series.PathForStep(1200), "/some/dir/shard-3-1200.mnck");
}

TEST_F(CheckpointSeriesTest, ListMatchesOnlyThisSeriesInStepOrder) {
  CheckpointSeries series(dir_, "ckpt", 0);
  for (const char* name : {"ckpt-10.mnck", "ckpt-9.mnck", "ckpt-100.mnck", "other-5.mnck",
                           "ckpt-abc.mnck", "ckpt-.mnck", "ckpt-12.mnck.bak", "ckpt-7.txt",
                           ".ckpt-11.mnck.tmp.Xy12ab", "ckpt-5-1.mnck"}) {
    WriteBytes(Path(name), "x");
  }
  EXPECT_THAT(Steps(series), ElementsAre(9, 10, 100));
}

TEST_F(CheckpointSeriesTest, MissingDirectoryIsEmptyAndNotFound) {
  CheckpointSeries series(Path("not-yet"));
  EXPECT_TRUE(Steps(series).empty());
  absl::StatusOr<RestoredCheckpoint> restored = series.RestoreLatest();
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(restored.status().message(), HasSubstr("not-yet"));
}

TEST_F(CheckpointSeriesTest, SaveCreatesDirectoryAndKeepsTheNewest) {
  CheckpointSeries series(Path("shard0"), "ckpt", 3);
  for (int64_t step : {1, 2, 3, 4, 5, 6}) {
    absl::StatusOr<std::string> path = series.Save(step * 100, AtStep(step * 100));
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(*path, series.PathForStep(step * 100));
  }
  EXPECT_THAT(Steps(series), ElementsAre(400, 500, 600));
  absl::StatusOr<RestoredCheckpoint> restored = series.RestoreLatest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 600);
  EXPECT_EQ(restored->checkpoint.counters.at("global_step"), 600);
  EXPECT_TRUE(restored->skipped.empty());
}

TEST_F(CheckpointSeriesTest, KeepLastZeroKeepsAll) {
  CheckpointSeries series(dir_, "ckpt", 0);
  for (int64_t step = 0; step < 7; ++step) ASSERT_TRUE(series.Save(step, AtStep(step)).ok());
  EXPECT_EQ(Steps(series).size(), 7u);
}

TEST_F(CheckpointSeriesTest, NegativeStepIsRefused) {
  CheckpointSeries series(dir_);
  absl::StatusOr<std::string> path = series.Save(-1, AtStep(0));
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CheckpointSeriesTest, PruneRemovesLeftoverTemporaryFilesOfThisSeriesOnly) {
  CheckpointSeries series(dir_, "ckpt", 2);
  WriteBytes(Path(".ckpt-7.mnck.tmp.AbC123"), "partial");
  WriteBytes(Path(".other-7.mnck.tmp.AbC123"), "partial");
  WriteBytes(Path("unrelated.txt"), "keep me");
  ASSERT_TRUE(series.Save(8, AtStep(8)).ok());
  EXPECT_THAT(FileNames(), ElementsAre(".other-7.mnck.tmp.AbC123", "ckpt-8.mnck", "unrelated.txt"));
}

TEST_F(CheckpointSeriesTest, TwoSeriesShareADirectory) {
  CheckpointSeries shard0(dir_, "shard-0", 1);
  CheckpointSeries shard1(dir_, "shard-1", 1);
  ASSERT_TRUE(shard0.Save(1, AtStep(1)).ok());
  ASSERT_TRUE(shard1.Save(1, AtStep(1)).ok());
  ASSERT_TRUE(shard0.Save(2, AtStep(2)).ok());
  EXPECT_THAT(Steps(shard0), ElementsAre(2));
  EXPECT_THAT(Steps(shard1), ElementsAre(1));
}

TEST_F(CheckpointSeriesTest, RestoreSkipsCorruptNewerCheckpoints) {
  CheckpointSeries series(dir_, "ckpt", 0);
  for (int64_t step : {10, 20, 30}) ASSERT_TRUE(series.Save(step, AtStep(step)).ok());
  // Step 30 torn, step 40 not a checkpoint at all.
  fs::resize_file(series.PathForStep(30), fs::file_size(series.PathForStep(30)) - 3);
  WriteBytes(series.PathForStep(40), "garbage that is not a checkpoint");
  absl::StatusOr<RestoredCheckpoint> restored = series.RestoreLatest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->step, 20);
  EXPECT_EQ(restored->path, series.PathForStep(20));
  EXPECT_EQ(restored->checkpoint.tensors[0].data[0], 20.0f);
  ASSERT_EQ(restored->skipped.size(), 2u);
  EXPECT_THAT(restored->skipped[0], HasSubstr("ckpt-40.mnck"));
  EXPECT_THAT(restored->skipped[0], HasSubstr("not a checkpoint"));
  EXPECT_THAT(restored->skipped[1], HasSubstr("ckpt-30.mnck"));
  EXPECT_THAT(restored->skipped[1], HasSubstr("truncated"));
}

TEST_F(CheckpointSeriesTest, AllCorruptIsNotFoundListingWhy) {
  CheckpointSeries series(dir_);
  WriteBytes(series.PathForStep(5), "");
  absl::StatusOr<RestoredCheckpoint> restored = series.RestoreLatest();
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(restored.status().message(), HasSubstr("skipped"));
  EXPECT_THAT(restored.status().message(), HasSubstr("ckpt-5.mnck"));
}

TEST_F(CheckpointSeriesTest, SetAsideRenamesWithoutDeletingAndHidesTheFile) {
  CheckpointSeries series(dir_, "ps-0-of-1", 2);
  ASSERT_TRUE(series.Save(5, AtStep(5)).ok());
  ASSERT_TRUE(series.Save(6, AtStep(6)).ok());
  absl::StatusOr<std::string> moved = series.SetAside(series.PathForStep(6));
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, series.PathForStep(6) + ".corrupt");
  EXPECT_TRUE(std::filesystem::exists(*moved));
  // A second file of the same name goes beside it, not over it.
  ASSERT_TRUE(series.Save(6, AtStep(6)).ok());
  absl::StatusOr<std::string> again = series.SetAside(series.PathForStep(6));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, series.PathForStep(6) + ".corrupt.2");
  absl::StatusOr<std::vector<CheckpointFile>> files = series.List();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].step, 5);
  absl::StatusOr<std::vector<std::string>> aside = series.ListSetAside();
  ASSERT_TRUE(aside.ok());
  EXPECT_EQ(*aside, (std::vector<std::string>{*moved, *again}));
  // Other series' set-aside files are not this series'.
  EXPECT_TRUE(CheckpointSeries(dir_, "ps-1-of-2", 2).ListSetAside()->empty());
  // Retention and restore no longer see them.
  ASSERT_TRUE(series.Save(7, AtStep(7)).ok());
  ASSERT_TRUE(series.Save(8, AtStep(8)).ok());
  EXPECT_TRUE(std::filesystem::exists(*moved));
  EXPECT_EQ(series.RestoreLatest()->step, 8);
}

}  // namespace
}  // namespace mobilenet
