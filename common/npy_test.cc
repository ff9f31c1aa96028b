#include "common/npy.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
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

constexpr char kPython[] = "/usr/bin/python3";

bool HavePythonNumpy() {
  static const bool have = access(kPython, X_OK) == 0 &&
                           std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0;
  return have;
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "npy_test.XXXXXX";
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

  // Runs a numpy snippet with `np` imported and `d` the test directory.
  void RunPython(const std::string& code) {
    const std::string script = Path("script.py");
    WriteBytes(script, "import numpy as np\nd = '" + dir_ + "'\n" + code + "\n");
    ASSERT_EQ(std::system((std::string(kPython) + " " + script).c_str()), 0) << code;
  }

  std::string dir_;
};

TEST_F(NpyTest, WriterRoundTrips) {
  const std::vector<float> data = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f};
  const std::string path = Path("a.npy");
  ASSERT_TRUE(WriteNpy(path, {2, 3}, data).ok());
  absl::StatusOr<NpyArray> read = ReadNpy(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->shape, ElementsAre(2, 3));
  EXPECT_EQ(read->data, data);
  // The data starts on a 64-byte boundary, as numpy writes it.
  EXPECT_EQ((ReadBytes(path).size() - data.size() * 4) % 64, 0u);
}

TEST_F(NpyTest, ScalarEmptyAndHighRankRoundTrip) {
  ASSERT_TRUE(WriteNpy(Path("s.npy"), {}, std::vector<float>{4.0f}).ok());
  absl::StatusOr<NpyArray> scalar = ReadNpy(Path("s.npy"));
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_THAT(scalar->data, ElementsAre(4.0f));

  ASSERT_TRUE(WriteNpy(Path("e.npy"), {3, 0}, {}).ok());
  absl::StatusOr<NpyArray> empty = ReadNpy(Path("e.npy"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(empty->shape, ElementsAre(3, 0));
  EXPECT_TRUE(empty->data.empty());

  std::vector<float> data(2 * 1 * 3 * 2 * 2);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  ASSERT_TRUE(WriteNpy(Path("h.npy"), {2, 1, 3, 2, 2}, data).ok());
  absl::StatusOr<NpyArray> high = ReadNpy(Path("h.npy"));
  ASSERT_TRUE(high.ok()) << high.status();
  EXPECT_THAT(high->shape, ElementsAre(2, 1, 3, 2, 2));
  EXPECT_EQ(high->data, data);
}

TEST_F(NpyTest, WriterRefusesMismatchedShape) {
  absl::Status status = WriteNpy(Path("a.npy"), {2, 2}, std::vector<float>{1.0f});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("(2, 2)"));
  status = WriteNpy(Path("a.npy"), {-1}, std::vector<float>{1.0f});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NpyTest, MissingFileIsNotFound) {
  absl::StatusOr<NpyArray> read = ReadNpy(Path("missing.npy"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr("missing.npy"));
}

TEST_F(NpyTest, NotAnNpyFile) {
  WriteBytes(Path("x.npy"), "PK\x03\x04 this is a zip, not an npy");
  absl::StatusOr<NpyArray> read = ReadNpy(Path("x.npy"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("not an .npy file"));
  WriteBytes(Path("short.npy"), "\x93NUM");
  EXPECT_FALSE(ReadNpy(Path("short.npy")).ok());
}

TEST_F(NpyTest, TruncatedAndOversizedData) {
  const std::string path = Path("a.npy");
  ASSERT_TRUE(WriteNpy(path, {4, 4}, std::vector<float>(16, 1.0f)).ok());
  const std::string good = ReadBytes(path);
  for (size_t cut :
       {good.size() - 1, good.size() - 4, good.size() - 64, size_t{64}, size_t{40}, size_t{9}}) {
    WriteBytes(path, good.substr(0, cut));
    absl::StatusOr<NpyArray> read = ReadNpy(path);
    ASSERT_FALSE(read.ok()) << "cut at " << cut;
    EXPECT_THAT(read.status().message(), HasSubstr(path));
  }
  WriteBytes(path, good.substr(0, good.size() - 4));
  absl::StatusOr<NpyArray> read = ReadNpy(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(read.status().message(), HasSubstr("(4, 4)"));

  WriteBytes(path, good + "xyzw");
  read = ReadNpy(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("4 unexpected bytes"));
}

TEST_F(NpyTest, HugeShapeIsRefusedWithoutAllocating) {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header.push_back('\n');
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  WriteBytes(Path("huge.npy"), bytes + header + "0123");
  absl::StatusOr<NpyArray> read = ReadNpy(Path("huge.npy"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("truncated"));
}

TEST_F(NpyTest, MalformedHeaderIsRefused) {
  for (const char* text : {"{'descr': '<f4', 'fortran_order': False}",
                           "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
                           "['descr', '<f4']", "{'descr': '<f4'"}) {
    std::string header = text;
    header.push_back('\n');
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes.push_back(static_cast<char>(header.size()));
    bytes.push_back(0);
    WriteBytes(Path("bad.npy"), bytes + header + "01234567");
    absl::StatusOr<NpyArray> read = ReadNpy(Path("bad.npy"));
    ASSERT_FALSE(read.ok()) << text;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(read.status().message(), HasSubstr("malformed header")) << text;
  }
}

TEST_F(NpyTest, ReadsFilesWrittenByNumpy) {
  if (!HavePythonNumpy()) GTEST_SKIP() << kPython << " with numpy not available";
  RunPython(
      "a = (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4)\n"
      "np.save(d + '/v1.npy', a)\n"
      "with open(d + '/v2.npy', 'wb') as f:\n"
      "    np.lib.format.write_array(f, a, version=(2, 0))\n"
      "np.save(d + '/scalar.npy', np.float32(2.5))\n"
      "np.save(d + '/vector.npy', np.array([1, 2, 3], dtype=np.float32))\n"
      "np.save(d + '/f64.npy', a.astype(np.float64))\n"
      "np.save(d + '/i32.npy', a.astype(np.int32))\n"
      "np.save(d + '/big_endian.npy', a.astype('>f4'))\n"
      "np.save(d + '/fortran.npy', np.asfortranarray(a))\n"
      "np.save(d + '/transposed_view.npy', a.transpose(2, 1, 0))\n");
  std::vector<float> expected(24);
  for (int i = 0; i < 24; ++i) expected[i] = i * 0.5f - 3.0f;
  for (const char* name : {"v1.npy", "v2.npy"}) {
    absl::StatusOr<NpyArray> read = ReadNpy(Path(name));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_THAT(read->shape, ElementsAre(2, 3, 4)) << name;
    EXPECT_EQ(read->data, expected) << name;
  }
  absl::StatusOr<NpyArray> scalar = ReadNpy(Path("scalar.npy"));
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_THAT(scalar->data, ElementsAre(2.5f));
  absl::StatusOr<NpyArray> vector = ReadNpy(Path("vector.npy"));
  ASSERT_TRUE(vector.ok()) << vector.status();
  EXPECT_THAT(vector->shape, ElementsAre(3));
  EXPECT_THAT(vector->data, ElementsAre(1.0f, 2.0f, 3.0f));

  for (const auto& [name, dtype] : std::vector<std::pair<std::string, std::string>>{
           {"f64.npy", "'<f8'"}, {"i32.npy", "'<i4'"}, {"big_endian.npy", "'>f4'"}}) {
    absl::StatusOr<NpyArray> read = ReadNpy(Path(name));
    ASSERT_FALSE(read.ok()) << name;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(read.status().message(), HasSubstr("dtype " + dtype));
    EXPECT_THAT(read.status().message(), HasSubstr(name));
  }
  // numpy saves a non-contiguous view of a C array as fortran_order when it is F-contiguous.
  for (const char* name : {"fortran.npy", "transposed_view.npy"}) {
    absl::StatusOr<NpyArray> read = ReadNpy(Path(name));
    ASSERT_FALSE(read.ok()) << name;
    EXPECT_THAT(read.status().message(), HasSubstr("fortran_order is True"));
  }
}

TEST_F(NpyTest, NumpyReadsFilesFromTheWriter) {
  if (!HavePythonNumpy()) GTEST_SKIP() << kPython << " with numpy not available";
  std::vector<float> data(2 * 3 * 5);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i) / 7.0f;
  ASSERT_TRUE(WriteNpy(Path("ours.npy"), {2, 3, 5}, data).ok());
  ASSERT_TRUE(WriteNpy(Path("ours_scalar.npy"), {}, std::vector<float>{-1.0f}).ok());
  RunPython(
      "a = np.load(d + '/ours.npy')\n"
      "assert a.dtype == np.float32 and a.shape == (2, 3, 5), (a.dtype, a.shape)\n"
      "assert np.array_equal(a.ravel(), np.arange(30, dtype=np.float32) / np.float32(7))\n"
      "s = np.load(d + '/ours_scalar.npy')\n"
      "assert s.shape == () and s == -1.0\n");
}

}  // namespace
}  // namespace mobilenet
