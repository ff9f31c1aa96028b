// Opening the data a worker trains and evaluates on, in any of the formats the trainer
// reads, for mobilenet-worker (single process and cluster) and mobilenet-ctl eval:
//   idx:          Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...), in memory;
//   cifar:        CIFAR-10/100 binaries (input/cifar_reader.h), in memory, 3 channels;
//   image_folder: DATA_DIR/{train,test|val}/<class>/*.{jpg,jpeg,png}
//                 (input/image_folder_source.h), decoded on the fly by a thread pool.
// auto detects the format from the files in DATA_DIR, in that order.
//
// Every format is cut into the same kind of DataShard over its image index, so a worker
// reads only its own shard, the same one after every restart. Preprocessing is pad_crop
// (worker/preprocessing.h: flip, pad-and-crop, resize; the standard CIFAR and Fashion-MNIST
// augmentation) or inception (input/inception_preprocessing.h: random resized crop, flip,
// colour distortion; evaluation on the central crop); by default inception for image
// folders and pad_crop for the in-memory formats.
#ifndef MOBILENET_WORKER_TRAINING_DATA_H_
#define MOBILENET_WORKER_TRAINING_DATA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "input/inception_preprocessing.h"
#include "worker/batch_source.h"
#include "worker/evaluation_reader.h"

namespace mobilenet {

enum class TrainingDataFormat { kAuto, kIdx, kImageFolder, kCifar };

// "auto", "idx", "image_folder" or "cifar"; InvalidArgument naming the choices otherwise.
absl::StatusOr<TrainingDataFormat> ParseTrainingDataFormat(const std::string& name);
const char* TrainingDataFormatName(TrainingDataFormat format);

// The format of the data set in `data_dir`: idx when it holds train-images-idx3-ubyte[.gz],
// cifar when it holds CIFAR-10 or CIFAR-100 binaries, image_folder when it has a train/
// folder with a subfolder. NotFound listing what was looked for otherwise.
absl::StatusOr<TrainingDataFormat> DetectTrainingDataFormat(const std::string& data_dir);

enum class PreprocessingKind { kDefault, kInception, kPadCrop };

// "default", "inception" or "pad_crop"; InvalidArgument otherwise.
absl::StatusOr<PreprocessingKind> ParsePreprocessingKind(const std::string& name);

// Fashion-MNIST's ten class names ("T-shirt/top", ..., "Ankle boot").
const std::vector<std::string>& FashionMnistClassNames();

struct TrainingDataOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  TrainingDataFormat format = TrainingDataFormat::kAuto;
  PreprocessingKind preprocessing = PreprocessingKind::kDefault;

  // The model's input; num_classes 0: the data set's (else it must match it).
  int resolution = 56;
  int channels = 1;
  int num_classes = 0;

  // pad_crop augmentation.
  bool random_flip = true;
  int crop_padding = 2;
  // inception: its crop, aspect, colour and central-crop fields (output size, channels,
  // training, random_flip, mean and stddev are set from the fields here).
  InceptionPreprocessingConfig inception;
  // Normalization for either path, one value or one per channel; empty: ImageNet's for
  // 3-channel data, Fashion-MNIST's for 1-channel data.
  std::vector<float> mean;
  std::vector<float> stddev;

  // image_folder: check every file's header up front and leave the bad ones out (warned
  // about) instead of failing.
  bool skip_bad_images = false;
  int input_threads = 1;     // decoding and augmenting threads
  int prefetch_batches = 4;  // batches prepared ahead
  int batch_size = 64;       // sizes the prefetch ring

  // Which shard of the training set this process reads.
  uint64_t seed = 1;
  int shard_index = 0;
  int num_shards = 1;
  // Elastic workers (--max_workers): no fixed shard is opened (train stays null); the
  // blocks parameter server 0 leases are served by make_block_source.
  bool leased = false;

  bool open_train = true;  // false: only the test set (evaluation)
  bool open_test = true;   // false: no test set (cluster workers other than the chief)
  int eval_examples = 0;   // 0: the whole test set
};

struct TrainingData {
  TrainingDataFormat format = TrainingDataFormat::kIdx;  // as opened: never kAuto
  std::vector<std::string> class_names;                  // one per class
  ImageShape output_shape;                               // what the model gets
  std::unique_ptr<BatchSource> train;  // this shard; null unless open_train and not leased
  // With open_train: the training set's size, and a new source serving any DataShard of it
  // (as `train` serves its shard: same augmentation, threads and prefetching).
  int train_examples = 0;
  std::function<absl::StatusOr<std::unique_ptr<BatchSource>>(const DataShard&)> make_block_source;
  // A new reader of one pass over the test set; empty unless open_test. Each reader is
  // independent (one per evaluating thread).
  std::function<absl::StatusOr<std::unique_ptr<EvaluationSource>>()> make_test_reader;
  // Lines for the log: the format (and whether it was detected), skipped images.
  std::vector<std::string> notes;

  int num_classes() const { return static_cast<int>(class_names.size()); }
};

// The normalization used when --mean and --stddev are not given, in training,
// evaluation and prediction alike: ImageNet's for 3 channels, Fashion-MNIST's otherwise.
std::vector<float> DefaultMean(int channels);
std::vector<float> DefaultStddev(int channels);

// The checks of `options` that need no files: InvalidArgument naming the flag (e.g.
// "--crop_padding must be >= 0, got -1"). OpenTrainingData makes them first.
absl::Status CheckTrainingDataOptions(const TrainingDataOptions& options);

// Opens the data as `options` say. Errors: of detection, of the readers (naming the file
// or folder); InvalidArgument naming both values when num_classes (if given) differs from
// the data set's, when CIFAR's 3 channels differ from `channels`, or an option is out of
// range; FailedPrecondition naming the first bad file of an image folder without
// skip_bad_images (every header is checked before training starts).
absl::StatusOr<TrainingData> OpenTrainingData(const TrainingDataOptions& options);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_TRAINING_DATA_H_
