#include "worker/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_contents.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

bool HasGzipMagic(const std::string& bytes, size_t offset) {
  return bytes.size() >= offset + 2 && static_cast<uint8_t>(bytes[offset]) == 0x1f &&
         static_cast<uint8_t>(bytes[offset + 1]) == 0x8b;
}

// Inflates one or more concatenated gzip members making up all of `compressed`.
absl::StatusOr<std::string> Gunzip(const std::string& path, const std::string& compressed) {
  std::string out;
  // The last four bytes of a member hold its uncompressed size mod 2^32: a good first guess.
  if (compressed.size() >= 4) {
    const auto* tail = reinterpret_cast<const uint8_t*>(compressed.data() + compressed.size() - 4);
    const uint32_t isize = tail[0] | (tail[1] << 8) | (tail[2] << 16) | (uint32_t{tail[3]} << 24);
    out.reserve(std::min<uint64_t>(isize, uint64_t{1} << 31));
  }
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat(path, ": cannot initialize zlib"));
  }
  size_t consumed = 0;
  char chunk[1 << 16];
  absl::Status status;
  while (true) {
    const size_t remaining = compressed.size() - consumed;
    stream.avail_in = static_cast<uInt>(std::min<size_t>(remaining, 1u << 30));
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + consumed));
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof(chunk);
    const uInt avail_in_before = stream.avail_in;
    const int rc = inflate(&stream, Z_NO_FLUSH);
    consumed += avail_in_before - stream.avail_in;
    out.append(chunk, sizeof(chunk) - stream.avail_out);
    if (rc == Z_STREAM_END) {
      if (consumed == compressed.size()) break;
      if (!HasGzipMagic(compressed, consumed)) {
        status = absl::DataLossError(absl::StrCat(path, ": ", compressed.size() - consumed,
                                                  " unexpected bytes after the gzip stream"));
        break;
      }
      inflateReset(&stream);  // another gzip member follows
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && consumed == compressed.size()) {
      status = absl::DataLossError(absl::StrCat(
          path, ": gzip stream ends early after ", compressed.size(),
          " compressed bytes (", out.size(), " inflated); the file is truncated"));
      break;
    }
    status = absl::DataLossError(absl::StrCat(path, ": corrupt gzip stream: ",
                                              stream.msg != nullptr ? stream.msg : zError(rc)));
    break;
  }
  inflateEnd(&stream);
  if (!status.ok()) return status;
  return out;
}

uint32_t BigEndian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Checks the magic and reads `num_dims` dimensions after it; returns the header size.
absl::StatusOr<size_t> ParseIdxHeader(const std::string& path, const std::string& bytes,
                                      uint32_t magic, int num_dims, std::vector<int>* dims) {
  if (bytes.size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": file is ", bytes.size(), " bytes, too short for an IDX magic"));
  }
  const uint32_t actual = BigEndian32(bytes, 0);
  if (actual != magic) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: magic 0x%08x expected, got 0x%08x", path, magic, actual));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(num_dims);
  if (bytes.size() < header) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": file is ", bytes.size(),
                                                   " bytes, shorter than its ", header,
                                                   "-byte IDX header"));
  }
  dims->clear();
  for (int d = 0; d < num_dims; ++d) {
    const uint32_t value = BigEndian32(bytes, 4 + 4 * d);
    if (value > 0x7fffffffu) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": dimension ", d, " is ", value, ", larger than 2^31 - 1"));
    }
    dims->push_back(static_cast<int>(value));
  }
  return header;
}

absl::Status CheckPayloadSize(const std::string& path, const std::string& bytes,
                              size_t header, uint64_t expected, const char* what) {
  const uint64_t actual = bytes.size() - header;
  if (actual != expected) {
    return absl::DataLossError(absl::StrCat(path, ": expected ", expected, " bytes of ", what,
                                            ", got ", actual,
                                            actual < expected ? " (truncated file)" : ""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadMaybeGzippedFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileContents(path);
  if (!bytes.ok() || !HasGzipMagic(*bytes, 0)) return bytes;
  return Gunzip(path, *bytes);
}

absl::StatusOr<IdxImages> ReadIdxImages(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadMaybeGzippedFile(path));
  std::vector<int> dims;
  ASSIGN_OR_RETURN(const size_t header, ParseIdxHeader(path, bytes, kIdxImagesMagic, 3, &dims));
  if (dims[1] < 1 || dims[2] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": image size ", dims[1], "x",
                                                   dims[2], " must be at least 1x1"));
  }
  const uint64_t image_bytes = static_cast<uint64_t>(dims[1]) * dims[2];  // < 2^62
  if (static_cast<uint64_t>(dims[0]) > UINT64_MAX / image_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": expected ", dims[0], " x ", dims[1], " x ",
                                            dims[2], " bytes of pixel data, got ",
                                            bytes.size() - header, " (truncated file)"));
  }
  RETURN_IF_ERROR(CheckPayloadSize(path, bytes, header, dims[0] * image_bytes, "pixel data"));
  IdxImages images;
  images.count = dims[0];
  images.rows = dims[1];
  images.cols = dims[2];
  images.pixels.assign(bytes.begin() + header, bytes.end());
  return images;
}

absl::StatusOr<std::vector<uint8_t>> ReadIdxLabels(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadMaybeGzippedFile(path));
  std::vector<int> dims;
  ASSIGN_OR_RETURN(const size_t header, ParseIdxHeader(path, bytes, kIdxLabelsMagic, 1, &dims));
  RETURN_IF_ERROR(CheckPayloadSize(path, bytes, header, dims[0], "label data"));
  return std::vector<uint8_t>(bytes.begin() + header, bytes.end());
}

absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, int num_classes) {
  if (num_classes < 1 || num_classes > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes must be in [1, 256] for uint8 IDX labels, got ", num_classes));
  }
  ASSIGN_OR_RETURN(IdxImages images, ReadIdxImages(images_path));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> raw_labels, ReadIdxLabels(labels_path));
  if (static_cast<size_t>(images.count) != raw_labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, " has ", images.count,
                                                   " images but ", labels_path, " has ",
                                                   raw_labels.size(), " labels"));
  }
  std::vector<int> labels(raw_labels.begin(), raw_labels.end());
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(labels_path, ": label ", labels[i],
                                                     " at index ", i, " outside [0, ",
                                                     num_classes, ")"));
    }
  }
  return Dataset::Create(ImageShape{images.rows, images.cols, 1}, num_classes,
                         std::move(images.pixels), std::move(labels));
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, DatasetSplit split) {
  const std::string prefix = split == DatasetSplit::kTrain ? "train" : "t10k";
  auto path_of = [&](const std::string& name) {
    const std::string base = dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
    std::FILE* file = std::fopen((base + ".gz").c_str(), "rb");
    if (file != nullptr) {
      std::fclose(file);
      return base + ".gz";
    }
    file = std::fopen(base.c_str(), "rb");
    if (file != nullptr) {
      std::fclose(file);
      return base;
    }
    return base + ".gz";  // missing: report the name that is looked for first
  };
  return LoadIdxDataset(path_of(prefix + "-images-idx3-ubyte"),
                        path_of(prefix + "-labels-idx1-ubyte"), kFashionMnistClasses);
}

}  // namespace mobilenet
