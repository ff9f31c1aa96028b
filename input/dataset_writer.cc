#include "input/dataset_writer.h"

#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_contents.h"
#include "common/status_macros.h"
#include "input/cifar_reader.h"
#include "input/image_encoder.h"

namespace mobilenet {
namespace {

absl::Status CheckClassFolderNames(const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (name.empty() || name[0] == '.' || absl::StrContains(name, '/')) {
      return absl::InvalidArgumentError(
          absl::StrCat("class ", i, " name \"", name,
                       "\" cannot be a class folder (empty, starting with '.' or containing '/')"));
    }
    if (i > 0 && !(names[i - 1] < name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "class names must be in strictly ascending byte order so that the folders read "
          "back with the same labels; \"",
          names[i - 1], "\" (", i - 1, ") comes before \"", name, "\" (", i, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckChannels(const LabeledImages& images) {
  if (images.channels != 1 && images.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("images of 1 or 3 channels can be written, not ", images.channels));
  }
  return absl::OkStatus();
}

absl::Status MakeFolders(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": cannot create the folder: ", error.message()));
  }
  return absl::OkStatus();
}

// The CIFAR record of image i: `label_bytes` bytes (only the last one non-zero: the label),
// then the R, G and B planes of the image centered in 32x32.
void AppendCifarRecord(const LabeledImages& images, int i, int label_bytes, std::string* out) {
  out->append(label_bytes - 1, '\0');
  out->push_back(static_cast<char>(images.labels[i]));
  const int top = (kCifarSide - images.height) / 2;
  const int left = (kCifarSide - images.width) / 2;
  const uint8_t* image = images.image(i);
  for (int c = 0; c < 3; ++c) {
    const int source_channel = images.channels == 1 ? 0 : c;
    for (int y = 0; y < kCifarSide; ++y) {
      for (int x = 0; x < kCifarSide; ++x) {
        const int sy = y - top;
        const int sx = x - left;
        const bool inside = sy >= 0 && sy < images.height && sx >= 0 && sx < images.width;
        out->push_back(inside
                           ? static_cast<char>(
                                 image[(sy * images.width + sx) * images.channels + source_channel])
                           : '\0');
      }
    }
  }
}

}  // namespace

LabeledImages FirstPerClass(const LabeledImages& images, int max_per_class) {
  if (max_per_class <= 0) return images;
  LabeledImages out;
  out.height = images.height;
  out.width = images.width;
  out.channels = images.channels;
  out.class_names = images.class_names;
  std::vector<int> taken(images.class_names.size(), 0);
  for (int i = 0; i < images.size(); ++i) {
    if (taken[images.labels[i]]++ >= max_per_class) continue;
    out.labels.push_back(images.labels[i]);
    out.pixels.insert(out.pixels.end(), images.image(i), images.image(i) + images.image_bytes());
  }
  return out;
}

absl::Status WriteImageFolder(const LabeledImages& images, const std::string& out_dir,
                              const std::string& split, ImageFileFormat format, int jpeg_quality) {
  RETURN_IF_ERROR(CheckClassFolderNames(images.class_names));
  RETURN_IF_ERROR(CheckChannels(images));
  const std::string split_dir = absl::StrCat(out_dir, "/", split);
  std::vector<bool> made(images.class_names.size(), false);
  for (int i = 0; i < images.size(); ++i) {
    const int label = images.labels[i];
    const std::string class_dir = absl::StrCat(split_dir, "/", images.class_names[label]);
    if (!made[label]) {
      RETURN_IF_ERROR(MakeFolders(class_dir));
      made[label] = true;
    }
    DecodedImage image{
        images.height, images.width, images.channels,
        std::vector<uint8_t>(images.image(i), images.image(i) + images.image_bytes())};
    const bool png = format == ImageFileFormat::kPng;
    const std::string path = absl::StrFormat("%s/%06d.%s", class_dir, i, png ? "png" : "jpg");
    absl::StatusOr<std::string> bytes =
        png ? EncodePng(image) : EncodeJpeg(image, JpegOptions{jpeg_quality, false});
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(),
                          absl::StrCat(path, ": ", bytes.status().message()));
    }
    RETURN_IF_ERROR(WriteFileContents(path, *bytes));
  }
  return absl::OkStatus();
}

absl::Status WriteCifar(const LabeledImages& images, const std::string& out_dir,
                        const std::string& split) {
  RETURN_IF_ERROR(CheckSplit("CIFAR split", split));
  const int num_classes = static_cast<int>(images.class_names.size());
  if (num_classes != 10 && num_classes != 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CIFAR binaries hold 10 (CIFAR-10) or 100 (CIFAR-100) classes, not ", num_classes));
  }
  RETURN_IF_ERROR(CheckChannels(images));
  if (images.height > kCifarSide || images.width > kCifarSide) {
    return absl::InvalidArgumentError(absl::StrCat("CIFAR images are ", kCifarSide, "x", kCifarSide,
                                                   "; ", images.height, "x", images.width,
                                                   " does not fit"));
  }
  RETURN_IF_ERROR(MakeFolders(out_dir));
  const CifarFormat& format =
      GetCifarFormat(num_classes == 10 ? CifarVariant::kCifar10 : CifarVariant::kCifar100);
  const std::vector<std::string>& files = split == "train" ? format.train_files : format.test_files;
  const int per_file =
      (images.size() + static_cast<int>(files.size()) - 1) / static_cast<int>(files.size());
  for (size_t f = 0; f < files.size(); ++f) {
    std::string records;
    const int end = std::min<int>(images.size(), (f + 1) * per_file);
    for (int i = static_cast<int>(f) * per_file; i < end; ++i) {
      AppendCifarRecord(images, i, format.label_bytes, &records);
    }
    RETURN_IF_ERROR(WriteFileContents(absl::StrCat(out_dir, "/", files[f]), records));
  }
  return WriteFileContents(absl::StrCat(out_dir, "/", format.names_file),
                           absl::StrCat(absl::StrJoin(images.class_names, "\n"), "\n"));
}

}  // namespace mobilenet
