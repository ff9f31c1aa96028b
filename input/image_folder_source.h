// An ImageSource over a folder of JPEG and PNG files, one subfolder per class:
//   DATA_DIR/train/<class>/*.{jpg,jpeg,png}
//   DATA_DIR/test/<class>/...   (or DATA_DIR/val/<class>/... when there is no test/)
// The class names are the sorted names of train's subfolders (byte-wise; names starting
// with '.' are not classes), the label of a file the index of its folder's name; test/val
// uses train's classes, so a class may have no test images but test may not have a class
// that train lacks. Files are recognized by their extension (.jpg, .jpeg, .png, in any
// case); other files, and anything in a class folder that is not a regular file, are
// ignored and counted. Images are numbered by (class, file name), byte-wise, so that the
// numbering is the same on every machine and every run for the same files.
//
// The encoded files stay on disk; Load reads and decodes one (image_decoder.h).
#ifndef MOBILENET_INPUT_IMAGE_FOLDER_SOURCE_H_
#define MOBILENET_INPUT_IMAGE_FOLDER_SOURCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "input/image_source.h"

namespace mobilenet {

// True for a name ending in .jpg, .jpeg or .png, in any case.
bool HasImageExtension(const std::string& file_name);

// Immutable; thread-safe.
class ImageFolderSource : public ImageSource {
 public:
  // Lists the images of `split` ("train", or "test", which reads DATA_DIR/test and else
  // DATA_DIR/val) of `data_dir`; Load decodes into `channels` (1 or 3) channels.
  // InvalidArgument for another split or channel count; NotFound naming the folders looked
  // for when the split's folder (or, for test, train's) is missing; FailedPrecondition
  // naming the folder when train has no class folders, a class folder has no image, or
  // test/val has a class folder that train does not have; the error of the file system
  // when a folder cannot be read.
  static absl::StatusOr<std::unique_ptr<ImageFolderSource>> Open(const std::string& data_dir,
                                                                 const std::string& split,
                                                                 int channels);

  // The same images but those at `indices` (of this source), renumbered in the same order;
  // classes are kept even if all their images are excluded.
  std::unique_ptr<ImageFolderSource> Without(const std::vector<int>& indices) const;

  int size() const override { return static_cast<int>(images_.size()); }
  int num_classes() const override { return static_cast<int>(class_names_.size()); }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(int index) const override;
  // Reads and decodes the file; errors of DecodeImageFile (they start with the path).
  absl::StatusOr<DecodedImage> Load(int index) const override;
  int channels() const override { return channels_; }
  // The file's path.
  std::string Describe(int index) const override { return path(index); }

  const std::string& path(int index) const;
  // The folder listed, e.g. DATA_DIR/val.
  const std::string& split_dir() const { return split_dir_; }
  // Images per class.
  std::vector<int> class_counts() const;
  // Files and folders in the split's folders that are not images (see above).
  int ignored_files() const { return ignored_files_; }
  // Images removed by Without.
  int excluded_images() const { return excluded_images_; }

 private:
  struct Image {
    std::string path;
    int label = 0;
  };
  ImageFolderSource(std::string split_dir, std::vector<std::string> class_names,
                    std::vector<Image> images, int channels, int ignored_files,
                    int excluded_images);

  std::string split_dir_;
  std::vector<std::string> class_names_;
  std::vector<Image> images_;
  int channels_;
  int ignored_files_;
  int excluded_images_;
};

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_IMAGE_FOLDER_SOURCE_H_
