#include "input/cifar_reader.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_contents.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

bool Exists(const std::string& path) {
  std::error_code error;
  return std::filesystem::exists(path, error);
}

absl::StatusOr<std::vector<std::string>> ReadClassNames(const std::string& path, int num_classes) {
  std::vector<std::string> names;
  if (!Exists(path)) {
    for (int i = 0; i < num_classes; ++i) names.push_back(absl::StrCat(i));
    return names;
  }
  ASSIGN_OR_RETURN(const std::string text, ReadFileContents(path));
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) names.emplace_back(line);
  }
  if (static_cast<int>(names.size()) != num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": expected ", num_classes, " class names (one a line), got ", names.size()));
  }
  return names;
}

// Appends the records of `path` to `out`.
absl::Status ReadCifarFile(const std::string& path, const CifarFormat& format, LabeledImages* out) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileContents(path));
  const size_t record = format.label_bytes + kCifarImageBytes;
  if (bytes.size() % record != 0) {
    return absl::DataLossError(absl::StrCat(
        path, ": ", bytes.size(), " bytes is not a whole number of ", record, "-byte records (",
        bytes.size() / record, " records and ", bytes.size() % record,
        " bytes over; truncated or not a CIFAR-", format.num_classes, " file)"));
  }
  const size_t count = bytes.size() / record;
  const size_t first = out->labels.size();
  out->pixels.resize((first + count) * kCifarImageBytes);
  constexpr int kPlane = kCifarSide * kCifarSide;
  for (size_t r = 0; r < count; ++r) {
    const auto* in = reinterpret_cast<const uint8_t*>(bytes.data() + r * record);
    const int label = in[format.label_bytes - 1];
    if (label >= format.num_classes) {
      return absl::DataLossError(absl::StrCat(path, ": record ", r, " has label ", label,
                                              ", outside [0, ", format.num_classes, ")"));
    }
    out->labels.push_back(label);
    const uint8_t* planes = in + format.label_bytes;
    uint8_t* hwc = out->pixels.data() + (first + r) * kCifarImageBytes;
    for (int p = 0; p < kPlane; ++p) {
      for (int c = 0; c < 3; ++c) hwc[p * 3 + c] = planes[c * kPlane + p];
    }
  }
  return absl::OkStatus();
}

}  // namespace

const CifarFormat& GetCifarFormat(CifarVariant variant) {
  static const CifarFormat* const kCifar10 =
      new CifarFormat{10,
                      1,
                      "batches.meta.txt",
                      {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                       "data_batch_4.bin", "data_batch_5.bin"},
                      {"test_batch.bin"}};
  static const CifarFormat* const kCifar100 =
      new CifarFormat{100, 2, "fine_label_names.txt", {"train.bin"}, {"test.bin"}};
  return variant == CifarVariant::kCifar10 ? *kCifar10 : *kCifar100;
}

absl::StatusOr<CifarVariant> DetectCifarVariant(const std::string& dir) {
  const std::string cifar10 = absl::StrCat(dir, "/data_batch_1.bin");
  const std::string cifar100 = absl::StrCat(dir, "/train.bin");
  const bool is10 = Exists(cifar10);
  const bool is100 = Exists(cifar100);
  if (is10 && is100) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": has both ", cifar10, " (CIFAR-10) and ",
                                                   cifar100, " (CIFAR-100); which one?"));
  }
  if (is10) return CifarVariant::kCifar10;
  if (is100) return CifarVariant::kCifar100;
  return absl::NotFoundError(absl::StrCat(dir, ": not a CIFAR binary folder: neither ", cifar10,
                                          " (CIFAR-10) nor ", cifar100, " (CIFAR-100) exists"));
}

absl::StatusOr<LabeledImages> ReadCifar(const std::string& dir, const std::string& split) {
  RETURN_IF_ERROR(CheckSplit("CIFAR split", split));
  ASSIGN_OR_RETURN(const CifarVariant variant, DetectCifarVariant(dir));
  const CifarFormat& format = GetCifarFormat(variant);
  LabeledImages images;
  images.height = images.width = kCifarSide;
  images.channels = 3;
  ASSIGN_OR_RETURN(images.class_names,
                   ReadClassNames(absl::StrCat(dir, "/", format.names_file), format.num_classes));
  for (const std::string& file : split == "train" ? format.train_files : format.test_files) {
    RETURN_IF_ERROR(ReadCifarFile(absl::StrCat(dir, "/", file), format, &images));
  }
  return images;
}

}  // namespace mobilenet
