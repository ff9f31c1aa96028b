#include "common/npy.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "'<f4' data is copied as is");

constexpr char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

absl::Status ErrnoError(int error, const std::string& path, absl::string_view what) {
  if (error == 0) return absl::UnknownError(absl::StrCat(path, ": ", what, " failed"));
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(path, ": ", what, ": ", std::strerror(error)));
}

// The header's Python dict literal, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : rest_(text) {}

  // Parses the dict; InvalidArgument naming what is wrong and where.
  absl::Status Parse(NpyHeader* header) {
    bool have_descr = false, have_order = false, have_shape = false;
    SkipSpace();
    if (!Consume('{')) return Error("'{' expected");
    while (true) {
      SkipSpace();
      if (Consume('}')) break;
      std::string key;
      RETURN_IF_ERROR(String(&key));
      SkipSpace();
      if (!Consume(':')) return Error(absl::StrCat("':' expected after '", key, "'"));
      SkipSpace();
      if (key == "descr") {
        RETURN_IF_ERROR(Descr(&header->descr));
        have_descr = true;
      } else if (key == "fortran_order") {
        RETURN_IF_ERROR(Bool(&header->fortran_order));
        have_order = true;
      } else if (key == "shape") {
        RETURN_IF_ERROR(Shape(&header->shape));
        have_shape = true;
      } else {
        return Error(absl::StrCat("unexpected key '", key, "'"));
      }
      SkipSpace();
      if (Consume('}')) break;
      if (!Consume(',')) return Error("',' or '}' expected");
    }
    SkipSpace();
    if (!rest_.empty()) return Error("text after the closing '}'");
    if (!have_descr || !have_order || !have_shape) {
      return Error("keys 'descr', 'fortran_order' and 'shape' expected");
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat("malformed header: ", problem, " at \"",
                                                   absl::CEscape(rest_.substr(0, 20)), "\""));
  }
  void SkipSpace() {
    while (!rest_.empty() && absl::ascii_isspace(static_cast<unsigned char>(rest_[0]))) {
      rest_.remove_prefix(1);
    }
  }
  bool Consume(char c) {
    if (rest_.empty() || rest_[0] != c) return false;
    rest_.remove_prefix(1);
    return true;
  }
  bool ConsumeWord(absl::string_view word) {
    if (!absl::StartsWith(rest_, word)) return false;
    rest_.remove_prefix(word.size());
    return true;
  }
  absl::Status String(std::string* out) {
    if (rest_.empty() || (rest_[0] != '\'' && rest_[0] != '"')) return Error("string expected");
    const char quote = rest_[0];
    const size_t end = rest_.find(quote, 1);
    if (end == absl::string_view::npos) return Error("unterminated string");
    *out = std::string(rest_.substr(1, end - 1));
    rest_.remove_prefix(end + 1);
    return absl::OkStatus();
  }
  // A dtype string, or the raw text of a structured dtype (a list) so it can be named.
  absl::Status Descr(std::string* out) {
    if (!rest_.empty() && rest_[0] == '[') {
      int depth = 0;
      size_t i = 0;
      for (; i < rest_.size(); ++i) {
        if (rest_[i] == '[') ++depth;
        if (rest_[i] == ']' && --depth == 0) break;
      }
      if (i == rest_.size()) return Error("unterminated descr list");
      *out = std::string(rest_.substr(0, i + 1));
      rest_.remove_prefix(i + 1);
      return absl::OkStatus();
    }
    return String(out);
  }
  absl::Status Bool(bool* out) {
    if (ConsumeWord("True")) {
      *out = true;
    } else if (ConsumeWord("False")) {
      *out = false;
    } else {
      return Error("True or False expected");
    }
    return absl::OkStatus();
  }
  absl::Status Shape(std::vector<int64_t>* out) {
    if (!Consume('(')) return Error("'(' expected for the shape");
    while (true) {
      SkipSpace();
      if (Consume(')')) return absl::OkStatus();
      size_t digits = 0;
      while (digits < rest_.size() &&
             absl::ascii_isdigit(static_cast<unsigned char>(rest_[digits]))) {
        ++digits;
      }
      int64_t d;
      if (digits == 0 || digits > 18 || !absl::SimpleAtoi(rest_.substr(0, digits), &d)) {
        return Error("non-negative integer dimension expected");
      }
      rest_.remove_prefix(digits);
      Consume('L');  // Python 2 long literal
      out->push_back(d);
      SkipSpace();
      if (Consume(')')) return absl::OkStatus();
      if (!Consume(',')) return Error("',' or ')' expected in the shape");
    }
  }

  absl::string_view rest_;
};

std::string FormatShape(absl::Span<const int64_t> shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

}  // namespace

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return ErrnoError(errno, path, "cannot open .npy file");
  struct stat st;
  if (fstat(fileno(file.get()), &st) != 0) return ErrnoError(errno, path, "fstat");
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  char prelude[12];
  const size_t got = std::fread(prelude, 1, std::min<uint64_t>(size, 10), file.get());
  if (got < 10 || std::memcmp(prelude, kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an .npy file: magic \"\\x93NUMPY\" expected, got \"",
                     absl::CEscape(absl::string_view(prelude, std::min<size_t>(got, 6))), "\""));
  }
  const int major = static_cast<unsigned char>(prelude[6]);
  const int minor = static_cast<unsigned char>(prelude[7]);
  if (!(major >= 1 && major <= 3) || minor != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": .npy format version ", major, ".",
                                                   minor, ", 1.0, 2.0 or 3.0 expected"));
  }
  uint64_t header_bytes;
  uint64_t data_offset;
  if (major == 1) {
    header_bytes =
        static_cast<unsigned char>(prelude[8]) | (static_cast<unsigned char>(prelude[9]) << 8);
    data_offset = 10 + header_bytes;
  } else {
    if (size < 12 || std::fread(prelude + 10, 1, 2, file.get()) != 2) {
      return absl::DataLossError(absl::StrCat(path, ": truncated inside the .npy prelude"));
    }
    uint32_t length;
    std::memcpy(&length, prelude + 8, 4);
    header_bytes = length;
    data_offset = 12 + header_bytes;
  }
  if (data_offset > size) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated: header of ", header_bytes, " bytes, the file has ", size));
  }
  std::string header_text(header_bytes, '\0');
  if (std::fread(header_text.data(), 1, header_bytes, file.get()) != header_bytes) {
    return ErrnoError(errno, path, "reading the .npy header");
  }
  NpyHeader header;
  absl::Status parsed = HeaderParser(header_text).Parse(&header);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.message()));
  }
  if (header.descr != "<f4") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": dtype '", header.descr, "', '<f4' (little-endian float32) expected"));
  }
  if (header.fortran_order) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": fortran_order is True, a C-order array expected (np.ascontiguousarray)"));
  }

  // The size is computed overflow-checked and compared with the bytes present before
  // anything is allocated.
  const uint64_t data_bytes = size - data_offset;
  const bool empty = std::find(header.shape.begin(), header.shape.end(), 0) != header.shape.end();
  uint64_t elements = empty ? 0 : 1;
  bool overflow = false;
  for (int64_t d : header.shape) {
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements);
  }
  if (overflow || elements > data_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: shape ", FormatShape(header.shape),
                                            " of float32 needs ", "more than the ", data_bytes,
                                            " data bytes present"));
  }
  if (elements * sizeof(float) > data_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: shape ", FormatShape(header.shape),
                                            " of float32 needs ", elements * sizeof(float),
                                            " data bytes, the file has ", data_bytes));
  }
  if (elements * sizeof(float) < data_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": ", data_bytes - elements * sizeof(float),
                                            " unexpected bytes after the data of shape ",
                                            FormatShape(header.shape)));
  }
  NpyArray array;
  array.shape = std::move(header.shape);
  array.data.resize(elements);
  if (std::fread(array.data.data(), sizeof(float), elements, file.get()) != elements) {
    return ErrnoError(errno, path, "reading .npy data");
  }
  return array;
}

absl::Status WriteNpy(const std::string& path, absl::Span<const int64_t> shape,
                      absl::Span<const float> data) {
  uint64_t elements = 1;
  bool overflow = false;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": negative dimension in shape ", FormatShape(shape)));
    }
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements);
  }
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) elements = 0;
  if (overflow || elements != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": shape ", FormatShape(shape), " does not hold the ", data.size(), " floats given"));
  }
  std::string header =
      absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': ", FormatShape(shape), ", }");
  // Version 1.0 has a 16-bit header length; numpy pads the prelude + header to 64 bytes
  // and ends the header with a newline.
  const bool version2 = header.size() + 11 > 65535;
  const size_t prelude = version2 ? 12 : 10;
  header.append(63 - (prelude + header.size()) % 64, ' ');
  header.push_back('\n');
  std::string bytes(kMagic, sizeof(kMagic));
  bytes.push_back(version2 ? 2 : 1);
  bytes.push_back(0);
  const uint32_t length = static_cast<uint32_t>(header.size());
  bytes.append(reinterpret_cast<const char*>(&length), version2 ? 4 : 2);
  bytes.append(header);

  File file(std::fopen(path.c_str(), "wb"));
  if (file == nullptr) return ErrnoError(errno, path, "cannot create .npy file");
  if (std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size() ||
      std::fwrite(data.data(), sizeof(float), data.size(), file.get()) != data.size()) {
    return ErrnoError(errno, path, "write");
  }
  if (std::fclose(file.release()) != 0) return ErrnoError(errno, path, "close");
  return absl::OkStatus();
}

}  // namespace mobilenet
