#include "input/data_inspection.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json_text.h"
#include "common/status_macros.h"
#include "input/cifar_reader.h"
#include "input/image_folder_source.h"

namespace mobilenet {
namespace {

constexpr const char* kSplits[] = {"train", "test"};

int ShorterSideBucket(int shorter) {
  int bucket = 0;
  while (bucket < kShorterSideBuckets - 1 && shorter >= kShorterSideBounds[bucket]) ++bucket;
  return bucket;
}

std::string ShorterSideLabel(int bucket) {
  if (bucket == 0) return absl::StrCat("<", kShorterSideBounds[0]);
  if (bucket == kShorterSideBuckets - 1) return absl::StrCat(">=", kShorterSideBounds[bucket - 1]);
  return absl::StrCat(kShorterSideBounds[bucket - 1], "-", kShorterSideBounds[bucket] - 1);
}

void CountReadable(const ImageHeader& header, SplitInspection* split) {
  ++split->shorter_side[ShorterSideBucket(std::min(header.width, header.height))];
  ++split->sizes[{header.width, header.height}];
  ++split->encodings[absl::StrCat(ImageFormatName(header.format), " ", header.color)];
}

absl::StatusOr<SplitInspection> InspectImageFolderSplit(const std::string& data_dir,
                                                        const std::string& name, ImageCheck check,
                                                        std::vector<std::string>* class_names) {
  ASSIGN_OR_RETURN(const std::unique_ptr<ImageFolderSource> source,
                   ImageFolderSource::Open(data_dir, name, 3));
  *class_names = source->class_names();
  SplitInspection split;
  split.split = name;
  split.location = source->split_dir();
  split.images = source->size();
  for (int count : source->class_counts()) split.class_counts.push_back(count);
  split.ignored_files = source->ignored_files();
  ImageFolderScan scan = ScanImageFolder(*source, check);
  for (const auto& header : scan.headers) {
    if (header.has_value()) CountReadable(*header, &split);
  }
  split.unreadable = std::move(scan.bad);
  return split;
}

absl::StatusOr<SplitInspection> InspectCifarSplit(const std::string& data_dir,
                                                  const std::string& name,
                                                  std::vector<std::string>* class_names) {
  ASSIGN_OR_RETURN(const LabeledImages images, ReadCifar(data_dir, name));
  *class_names = images.class_names;
  SplitInspection split;
  split.split = name;
  split.location = data_dir;
  split.images = images.size();
  split.class_counts.assign(images.class_names.size(), 0);
  for (int label : images.labels) ++split.class_counts[label];
  split.shorter_side[ShorterSideBucket(kCifarSide)] = images.size();
  if (images.size() > 0) {
    split.sizes[{kCifarSide, kCifarSide}] = images.size();
    split.encodings["CIFAR RGB"] = images.size();
  }
  return split;
}

// The sizes, most common first (ties: smaller area first), at most `limit` of them.
std::vector<std::pair<std::pair<int, int>, int64_t>> CommonSizes(const SplitInspection& split,
                                                                 size_t limit) {
  std::vector<std::pair<std::pair<int, int>, int64_t>> sizes(split.sizes.begin(),
                                                             split.sizes.end());
  std::stable_sort(sizes.begin(), sizes.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (sizes.size() > limit) sizes.resize(limit);
  return sizes;
}

}  // namespace

absl::StatusOr<DataFormat> ParseDataFormat(const std::string& name) {
  if (name == "auto") return DataFormat::kAuto;
  if (name == "image_folder") return DataFormat::kImageFolder;
  if (name == "cifar") return DataFormat::kCifar;
  return absl::InvalidArgumentError(
      absl::StrCat("data format must be auto, image_folder or cifar, got \"", name, "\""));
}

const char* DataFormatName(DataFormat format) {
  switch (format) {
    case DataFormat::kImageFolder:
      return "image_folder";
    case DataFormat::kCifar:
      return "cifar";
    default:
      return "auto";
  }
}

absl::StatusOr<DataInspection> InspectData(const std::string& data_dir, DataFormat format,
                                           ImageCheck check) {
  DataInspection inspection;
  inspection.data_dir = data_dir;
  if (format == DataFormat::kAuto) {
    format = DetectCifarVariant(data_dir).ok() ? DataFormat::kCifar : DataFormat::kImageFolder;
  }
  inspection.format = format;
  for (const char* name : kSplits) {
    absl::StatusOr<SplitInspection> split =
        format == DataFormat::kCifar
            ? InspectCifarSplit(data_dir, name, &inspection.class_names)
            : InspectImageFolderSplit(data_dir, name, check, &inspection.class_names);
    if (split.ok()) {
      inspection.splits.push_back(std::move(*split));
      continue;
    }
    if (inspection.splits.empty()) return split.status();  // train: nothing to inspect
    SplitInspection failed;
    failed.split = name;
    failed.status = split.status();
    inspection.splits.push_back(std::move(failed));
  }
  return inspection;
}

std::string FormatInspectionText(const DataInspection& inspection, int max_unreadable) {
  std::string text =
      absl::StrFormat("%s (%s), %d classes\n", inspection.data_dir,
                      DataFormatName(inspection.format), inspection.class_names.size());
  for (const SplitInspection& split : inspection.splits) {
    if (!split.status.ok()) {
      absl::StrAppend(&text, "\n", split.split, ": not readable: ", split.status.message(), "\n");
      continue;
    }
    absl::StrAppendFormat(&text, "\n%s (%s): %d images, %d unreadable, %d other files ignored\n",
                          split.split, split.location, split.images, split.unreadable.size(),
                          split.ignored_files);
    size_t width = 5;
    for (const std::string& name : inspection.class_names) width = std::max(width, name.size());
    absl::StrAppendFormat(&text, "  %-*s  %8s\n", width, "class", "images");
    for (size_t c = 0; c < split.class_counts.size(); ++c) {
      absl::StrAppendFormat(&text, "  %-*s  %8d%s\n", width, inspection.class_names[c],
                            split.class_counts[c], split.class_counts[c] == 0 ? "  (none)" : "");
    }
    std::vector<std::string> buckets;
    for (int b = 0; b < kShorterSideBuckets; ++b) {
      buckets.push_back(absl::StrCat(ShorterSideLabel(b), ": ", split.shorter_side[b]));
    }
    absl::StrAppend(&text, "  shorter side (pixels): ", absl::StrJoin(buckets, ", "), "\n");
    std::vector<std::string> sizes;
    for (const auto& [size, count] : CommonSizes(split, 10)) {
      sizes.push_back(absl::StrCat(size.first, "x", size.second, ": ", count));
    }
    absl::StrAppend(
        &text, "  most common sizes (width x height): ",
        sizes.empty() ? "none" : absl::StrJoin(sizes, ", "),
        split.sizes.size() > 10 ? absl::StrCat(" (", split.sizes.size(), " sizes)") : "", "\n");
    std::vector<std::string> encodings;
    for (const auto& [encoding, count] : split.encodings) {
      encodings.push_back(absl::StrCat(encoding, ": ", count));
    }
    absl::StrAppend(
        &text, "  encodings: ", encodings.empty() ? "none" : absl::StrJoin(encodings, ", "), "\n");
    if (!split.unreadable.empty()) {
      absl::StrAppend(&text, "  unreadable:\n");
      for (size_t i = 0; i < split.unreadable.size() && i < static_cast<size_t>(max_unreadable);
           ++i) {
        absl::StrAppend(&text, "    ", split.unreadable[i].status.message(), "\n");
      }
      if (split.unreadable.size() > static_cast<size_t>(max_unreadable)) {
        absl::StrAppend(&text, "    ... and ", split.unreadable.size() - max_unreadable,
                        " more (--json lists all)\n");
      }
    }
  }
  return text;
}

std::string FormatInspectionJson(const DataInspection& inspection) {
  std::vector<std::string> names;
  for (const std::string& name : inspection.class_names) names.push_back(JsonString(name));
  std::vector<std::string> splits;
  for (const SplitInspection& split : inspection.splits) {
    if (!split.status.ok()) {
      splits.push_back(absl::StrCat("{\"split\": ", JsonString(split.split),
                                    ", \"error\": ", JsonString(split.status.ToString()), "}"));
      continue;
    }
    std::vector<std::string> buckets;
    for (int b = 0; b < kShorterSideBuckets; ++b) {
      buckets.push_back(absl::StrCat(JsonString(ShorterSideLabel(b)), ": ", split.shorter_side[b]));
    }
    std::vector<std::string> sizes;
    for (const auto& [size, count] : CommonSizes(split, split.sizes.size())) {
      sizes.push_back(absl::StrCat("{\"width\": ", size.first, ", \"height\": ", size.second,
                                   ", \"count\": ", count, "}"));
    }
    std::vector<std::string> encodings;
    for (const auto& [encoding, count] : split.encodings) {
      encodings.push_back(absl::StrCat(JsonString(encoding), ": ", count));
    }
    std::vector<std::string> unreadable;
    for (const BadImage& bad : split.unreadable) {
      unreadable.push_back(absl::StrCat("{\"path\": ", JsonString(bad.path),
                                        ", \"error\": ", JsonString(bad.status.ToString()), "}"));
    }
    splits.push_back(absl::StrCat(
        "{\"split\": ", JsonString(split.split), ", \"location\": ", JsonString(split.location),
        ", \"images\": ", split.images, ", \"ignored_files\": ", split.ignored_files,
        ", \"class_counts\": [", absl::StrJoin(split.class_counts, ", "), "], \"shorter_side\": {",
        absl::StrJoin(buckets, ", "), "}, \"sizes\": [", absl::StrJoin(sizes, ", "),
        "], \"encodings\": {", absl::StrJoin(encodings, ", "), "}, \"unreadable\": [",
        absl::StrJoin(unreadable, ", "), "]}"));
  }
  return absl::StrCat("{\"data_dir\": ", JsonString(inspection.data_dir),
                      ", \"format\": ", JsonString(DataFormatName(inspection.format)),
                      ", \"classes\": [", absl::StrJoin(names, ", "), "], \"splits\": [",
                      absl::StrJoin(splits, ", "), "]}");
}

}  // namespace mobilenet
