#include "common/checkpoint.h"

#include <stdlib.h>
#include <zlib.h>

#include <cstring>
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
using ::testing::HasSubstr;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "checkpoint_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  static std::string ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void WriteBytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), bytes.size());
  }

  std::string dir_;
};

Checkpoint SampleCheckpoint() {
  Checkpoint c;
  c.metadata["model_config"] = "alpha=0.25 resolution=32";
  c.metadata["optimizer"] = "rmsprop";
  c.metadata["empty"] = "";
  c.counters["global_step"] = 1234;
  c.counters["examples_seen"] = int64_t{1} << 40;
  c.counters["negative"] = -7;
  c.tensors.push_back({"conv/weights", {3, 3, 2, 4}, {}});
  for (int i = 0; i < 72; ++i) c.tensors.back().data.push_back(0.5f * i - 3.0f);
  c.tensors.push_back({"scalar", {}, {2.5f}});
  c.tensors.push_back({"empty", {0, 5}, {}});
  c.tensors.push_back({"bias", {3}, {1.0f, -2.0f, 3.0e-20f}});
  return c;
}

void ExpectEqual(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.metadata, b.metadata);
  EXPECT_EQ(a.counters, b.counters);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    EXPECT_EQ(a.tensors[i].data, b.tensors[i].data) << a.tensors[i].name;
  }
}

TEST_F(CheckpointTest, RoundTrip) {
  const Checkpoint original = SampleCheckpoint();
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, original).ok());
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectEqual(original, *read);
  ASSERT_NE(read->FindTensor("bias"), nullptr);
  EXPECT_EQ(read->FindTensor("bias")->data[1], -2.0f);
  EXPECT_EQ(read->FindTensor("missing"), nullptr);
}

TEST_F(CheckpointTest, EmptyCheckpointRoundTrips) {
  const std::string path = Path("empty.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, Checkpoint()).ok());
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->metadata.empty());
  EXPECT_TRUE(read->counters.empty());
  EXPECT_TRUE(read->tensors.empty());
}

TEST_F(CheckpointTest, LargeTensorRoundTrips) {
  Checkpoint c;
  c.tensors.push_back({"params", {1 << 20}, std::vector<float>(1 << 20)});
  for (size_t i = 0; i < c.tensors[0].data.size(); ++i) c.tensors[0].data[i] = i * 1e-3f;
  c.tensors.push_back({"slot", {1 << 19, 2}, std::vector<float>(1 << 20, -1.0f)});
  const std::string path = Path("big.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectEqual(c, *read);
}

TEST_F(CheckpointTest, EveryFlippedByteIsRefused) {
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  const std::string good = ReadBytes(path);
  const std::string corrupt_path = Path("corrupt.mnck");
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      WriteBytes(corrupt_path, bad);
      absl::StatusOr<Checkpoint> read = ReadCheckpoint(corrupt_path);
      ASSERT_FALSE(read.ok()) << "byte " << i << " mask " << int{mask} << " went unnoticed";
      EXPECT_THAT(read.status().message(), HasSubstr(corrupt_path));
      if (i < 8) {
        EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(read.status().message(), HasSubstr("not a checkpoint"));
      } else {
        EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss)
            << "byte " << i << ": " << read.status();
      }
    }
  }
}

TEST_F(CheckpointTest, EveryTruncationIsRefused) {
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  const std::string good = ReadBytes(path);
  const std::string truncated_path = Path("truncated.mnck");
  for (size_t length = 0; length < good.size(); ++length) {
    WriteBytes(truncated_path, good.substr(0, length));
    absl::StatusOr<Checkpoint> read = ReadCheckpoint(truncated_path);
    ASSERT_FALSE(read.ok()) << "truncated to " << length << " bytes went unnoticed";
    EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
    EXPECT_THAT(read.status().message(), HasSubstr(truncated_path));
  }
}

TEST_F(CheckpointTest, TrailingBytesAreRefused) {
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  WriteBytes(path, ReadBytes(path) + "x");
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("after the trailer"));
}

TEST_F(CheckpointTest, MissingFileIsNotFound) {
  const std::string path = Path("nope.mnck");
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(path));
}

TEST_F(CheckpointTest, DirectoryIsRefused) {
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(dir_);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("not a regular file"));
}

TEST_F(CheckpointTest, OtherFileIsNotACheckpoint) {
  const std::string path = Path("notes.txt");
  WriteBytes(path, "hello, this is some text that is long enough\n");
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("not a checkpoint"));
  EXPECT_THAT(read.status().message(), HasSubstr("hello, t"));
}

// Rewrites the 4-byte little-endian field at `offset` and fixes the CRC that covers
// bytes [crc_begin, crc_at).
void PatchField(std::string* bytes, size_t offset, uint32_t value, size_t crc_begin,
                size_t crc_at) {
  std::memcpy(bytes->data() + offset, &value, 4);
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(bytes->data() + crc_begin), crc_at - crc_begin));
  std::memcpy(bytes->data() + crc_at, &crc, 4);
}

TEST_F(CheckpointTest, NewerVersionIsUnimplemented) {
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  std::string bytes = ReadBytes(path);
  PatchField(&bytes, 8, 2, 0, 16);  // version 2 with a consistent header checksum
  WriteBytes(path, bytes);
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(read.status().message(), HasSubstr("version 2"));
}

TEST_F(CheckpointTest, HugeLengthFieldsAreBoundedByTheFileSize) {
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  const std::string good = ReadBytes(path);

  // A record count no file of this size can hold, with a valid header checksum.
  std::string bytes = good;
  PatchField(&bytes, 12, 0x7fffffff, 0, 16);
  WriteBytes(path, bytes);
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);

  // The first record's payload length set to ~2^62 with a valid record-header checksum.
  bytes = good;
  const size_t record = 20;
  const uint64_t huge = uint64_t{1} << 62;
  std::memcpy(bytes.data() + record + 4, &huge, 8);
  PatchField(&bytes, record + 4, static_cast<uint32_t>(huge), record, record + 12);
  WriteBytes(path, bytes);
  read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("record 0"));
  EXPECT_THAT(read.status().message(), HasSubstr("truncated"));
}

TEST_F(CheckpointTest, HugeTensorDimensionIsRefusedBeforeAllocating) {
  Checkpoint c;
  c.tensors.push_back({"t", {2}, {1.0f, 2.0f}});
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());
  std::string bytes = ReadBytes(path);
  // Payload: u32 name_bytes, "t", u32 rank, i64 dim. Header 20 bytes, record header 16.
  const size_t dim_offset = 20 + 16 + 4 + 1 + 4;
  const uint64_t huge = uint64_t{1} << 61;
  std::memcpy(bytes.data() + dim_offset, &huge, 8);
  WriteBytes(path, bytes);
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("dimension 0"));
}

TEST_F(CheckpointTest, InvalidCheckpointIsNotWritten) {
  const std::string path = Path("bad.mnck");
  Checkpoint duplicate;
  duplicate.tensors.push_back({"w", {1}, {1.0f}});
  duplicate.tensors.push_back({"w", {1}, {2.0f}});
  absl::Status status = WriteCheckpoint(path, duplicate);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"w\" appears twice"));

  Checkpoint mismatch;
  mismatch.tensors.push_back({"w", {2, 3}, {1.0f}});
  status = WriteCheckpoint(path, mismatch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("shape holds 6 floats, data has 1"));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(CheckpointTest, WriteIntoMissingDirectoryFailsNamingIt) {
  const std::string path = Path("no/such/dir/a.mnck");
  absl::Status status = WriteCheckpoint(path, SampleCheckpoint());
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST_F(CheckpointTest, WriteReplacesAtomicallyAndLeavesNoTemporaryFile) {
  const std::string path = Path("a.mnck");
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  Checkpoint second;
  second.counters["global_step"] = 99;
  ASSERT_TRUE(WriteCheckpoint(path, second).ok());
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("a.mnck"));
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectEqual(second, *read);
}

TEST_F(CheckpointTest, LeftoverTemporaryFileDoesNotAffectTheCheckpoint) {
  const std::string path = Path("a.mnck");
  const Checkpoint original = SampleCheckpoint();
  ASSERT_TRUE(WriteCheckpoint(path, original).ok());
  // What an interrupted second write leaves: a partial temporary file beside the target.
  const std::string partial = ReadBytes(path).substr(0, 50);
  WriteBytes(Path(".a.mnck.tmp.abc123"), partial);
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectEqual(original, *read);
  // A later write succeeds next to it.
  ASSERT_TRUE(WriteCheckpoint(path, original).ok());
  EXPECT_TRUE(ReadCheckpoint(path).ok());
}

}  // namespace
}  // namespace mobilenet
