// Writes an in-memory data set (LabeledImages) in the formats the readers of input/ take:
// folders of PNG or JPEG files (image_folder_source.h) and CIFAR binaries
// (cifar_reader.h). Tests and demonstrations make their data sets with it, since they
// cannot download any; `mobilenet-ctl convert-data` writes Fashion-MNIST this way.
#ifndef MOBILENET_INPUT_DATASET_WRITER_H_
#define MOBILENET_INPUT_DATASET_WRITER_H_

#include <string>

#include "absl/status/status.h"
#include "input/labeled_images.h"

namespace mobilenet {

enum class ImageFileFormat { kPng, kJpeg };

// The first `max_per_class` images of each class of `images`, in their order (all of them
// when max_per_class <= 0).
LabeledImages FirstPerClass(const LabeledImages& images, int max_per_class);

// Writes image i as OUT_DIR/<split>/<class_names[label]>/<i, 6 digits>.png (lossless) or
// .jpg (`jpeg_quality`, grayscale for 1 channel), creating the folders; an existing file
// of the same name is replaced. A class without images gets no folder (the reader refuses
// empty class folders). InvalidArgument, before anything is written, when a class name is
// not a usable folder name (empty, ".", "..", a '/', a leading '.') or the names are not
// in strictly ascending byte order (the reader numbers classes by sorted name, so labels
// would not read back the same), or the images are not 1 or 3 channels; the errors of
// encoding and writing, naming the file.
absl::Status WriteImageFolder(const LabeledImages& images, const std::string& out_dir,
                              const std::string& split, ImageFileFormat format,
                              int jpeg_quality = 95);

// Writes `split` ("train" or "test") as CIFAR-10 binaries (10 classes: the train images
// spread over data_batch_1..5.bin, in order; test_batch.bin; batches.meta.txt) or CIFAR-100
// (100 classes: train.bin or test.bin with coarse label 0; fine_label_names.txt) into
// OUT_DIR (created). Images smaller than 32x32 are centered on black (zero)
// padding, not resized, so their pixels read back unchanged; grayscale is replicated to
// RGB. InvalidArgument for another class count, a larger image, or channels other than 1
// or 3; errors of writing, naming the file.
absl::Status WriteCifar(const LabeledImages& images, const std::string& out_dir,
                        const std::string& split);

}  // namespace mobilenet

#endif  // MOBILENET_INPUT_DATASET_WRITER_H_
