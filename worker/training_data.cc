#include "worker/training_data.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/seeded_random.h"
#include "common/status_macros.h"
#include "input/cifar_reader.h"
#include "input/image_folder_scan.h"
#include "input/image_folder_source.h"
#include "worker/data_conversion.h"
#include "worker/data_shard.h"
#include "worker/dataset_image_source.h"
#include "worker/idx_reader.h"
#include "worker/image_evaluation_reader.h"
#include "worker/prefetching_batch_source.h"
#include "worker/preprocessing.h"

namespace mobilenet {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";
constexpr char kIdxTrainImages[] = "train-images-idx3-ubyte";

bool HasIdxFiles(const std::string& dir) {
  std::error_code error;
  const fs::path base = fs::path(dir) / kIdxTrainImages;
  return fs::is_regular_file(base, error) ||
         fs::is_regular_file(fs::path(base).concat(".gz"), error);
}

bool HasClassFolders(const std::string& dir) {
  std::error_code error;
  fs::directory_iterator it(fs::path(dir) / "train", error);
  if (error) return false;
  for (const fs::directory_entry& entry : it) {
    if (entry.is_directory(error) && entry.path().filename().string()[0] != '.') return true;
  }
  return false;
}

// An in-memory data set with its names, before preprocessing.
struct InMemorySplit {
  std::shared_ptr<const Dataset> dataset;
  std::vector<std::string> class_names;
  std::string name;  // for messages
};

absl::StatusOr<InMemorySplit> ReadInMemorySplit(const TrainingDataOptions& options,
                                                TrainingDataFormat format, bool train) {
  InMemorySplit split;
  const std::string split_name = train ? "train" : "test";
  if (format == TrainingDataFormat::kIdx) {
    ASSIGN_OR_RETURN(
        Dataset dataset,
        LoadFashionMnist(options.data_dir, train ? DatasetSplit::kTrain : DatasetSplit::kTest));
    if (options.data_dir == kDefaultFashionMnistDir &&
        dataset.num_classes() == static_cast<int>(FashionMnistClassNames().size())) {
      split.class_names = FashionMnistClassNames();
    } else {
      for (int i = 0; i < dataset.num_classes(); ++i) split.class_names.push_back(absl::StrCat(i));
    }
    split.dataset = std::make_shared<const Dataset>(std::move(dataset));
  } else {
    ASSIGN_OR_RETURN(LabeledImages images, ReadCifar(options.data_dir, split_name));
    split.class_names = images.class_names;
    ASSIGN_OR_RETURN(Dataset dataset, ToDataset(std::move(images)));
    split.dataset = std::make_shared<const Dataset>(std::move(dataset));
  }
  split.name =
      absl::StrCat(options.data_dir, " (", TrainingDataFormatName(format), " ", split_name, ")");
  return split;
}

// Reads `split` of an image folder, checking every file's header before training starts.
absl::StatusOr<std::shared_ptr<const ImageSource>> OpenCheckedImageFolder(
    const TrainingDataOptions& options, const std::string& split, std::vector<std::string>* notes) {
  if (options.skip_bad_images) {
    ASSIGN_OR_RETURN(CheckedImageFolder checked,
                     OpenImageFolderSkippingBadImages(options.data_dir, split, options.channels,
                                                      ImageCheck::kHeader));
    if (!checked.skipped.empty()) {
      notes->push_back(DescribeSkippedImages(checked.source->split_dir(), checked.skipped));
    }
    return std::shared_ptr<const ImageSource>(std::move(checked.source));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ImageFolderSource> source,
                   ImageFolderSource::Open(options.data_dir, split, options.channels));
  const ImageFolderScan scan = ScanImageFolder(*source, ImageCheck::kHeader);
  if (!scan.bad.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %d bad image(s) in %s, the first: %s (--skip_bad_images leaves them out)",
        options.data_dir, scan.bad.size(), source->split_dir(), scan.bad[0].status.message()));
  }
  return std::shared_ptr<const ImageSource>(std::move(source));
}

// The two preprocessing paths as PreprocessFunctions over decoded images.
struct Preprocessing {
  PreprocessFunction train;
  PreprocessFunction test;  // deterministic
};

absl::StatusOr<PreprocessFunction> PadCropFunction(PreprocessingConfig config) {
  // Checked once here on a nominal image, so that a bad option fails before training.
  const ImageShape nominal{1, 1, 1};
  RETURN_IF_ERROR(ImagePreprocessor::Create(nominal, config).status());
  return PreprocessFunction(
      [config](const DecodedImage& image, uint64_t seed, float* out) -> absl::Status {
        // Images of a folder may differ in size: a preprocessor per image (it is cheap).
        const ImageShape shape{image.height, image.width, image.channels};
        ASSIGN_OR_RETURN(const ImagePreprocessor preprocessor,
                         ImagePreprocessor::Create(shape, config));
        SplitMix64 rng(seed);
        preprocessor.Apply(image.pixels.data(), preprocessor.Sample(&rng), out);
        return absl::OkStatus();
      });
}

absl::StatusOr<PreprocessFunction> InceptionFunction(InceptionPreprocessingConfig config) {
  ASSIGN_OR_RETURN(InceptionPreprocessor preprocessor, InceptionPreprocessor::Create(config));
  auto shared = std::make_shared<const InceptionPreprocessor>(std::move(preprocessor));
  return PreprocessFunction([shared](const DecodedImage& image, uint64_t seed, float* out) {
    return shared->Preprocess(image, seed, out);
  });
}

PreprocessingConfig PadCropConfig(const TrainingDataOptions& options, std::vector<float> mean,
                                  std::vector<float> stddev) {
  PreprocessingConfig config;
  config.output_height = config.output_width = options.resolution;
  config.output_channels = options.channels;
  config.random_flip = options.random_flip;
  config.crop_padding = options.crop_padding;
  config.mean = std::move(mean);
  config.stddev = std::move(stddev);
  return config;
}

// The per-channel normalization: the options', or the default for the data's channels.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> stddev;
};

Normalization NormalizationFor(const TrainingDataOptions& options, int data_channels) {
  Normalization n{options.mean, options.stddev};
  if (n.mean.empty()) n.mean = DefaultMean(data_channels);
  if (n.stddev.empty()) n.stddev = DefaultStddev(data_channels);
  return n;
}

absl::StatusOr<Preprocessing> MakePreprocessing(const TrainingDataOptions& options,
                                                PreprocessingKind kind, const Normalization& norm) {
  Preprocessing preprocessing;
  if (kind == PreprocessingKind::kPadCrop) {
    PreprocessingConfig config = PadCropConfig(options, norm.mean, norm.stddev);
    ASSIGN_OR_RETURN(preprocessing.train, PadCropFunction(config));
    config.random_flip = false;
    config.crop_padding = 0;
    ASSIGN_OR_RETURN(preprocessing.test, PadCropFunction(config));
    return preprocessing;
  }
  InceptionPreprocessingConfig config = options.inception;
  config.output_height = config.output_width = options.resolution;
  config.channels = options.channels;
  config.random_flip = options.random_flip;
  config.mean = norm.mean;
  config.stddev = norm.stddev;
  config.training = true;
  ASSIGN_OR_RETURN(preprocessing.train, InceptionFunction(config));
  config.training = false;
  ASSIGN_OR_RETURN(preprocessing.test, InceptionFunction(config));
  return preprocessing;
}

}  // namespace

std::vector<float> DefaultMean(int channels) {
  return channels == 3 ? ImageNetMean() : std::vector<float>{kFashionMnistMean};
}

std::vector<float> DefaultStddev(int channels) {
  return channels == 3 ? ImageNetStddev() : std::vector<float>{kFashionMnistStd};
}

absl::StatusOr<TrainingDataFormat> ParseTrainingDataFormat(const std::string& name) {
  if (name == "auto") return TrainingDataFormat::kAuto;
  if (name == "idx") return TrainingDataFormat::kIdx;
  if (name == "image_folder") return TrainingDataFormat::kImageFolder;
  if (name == "cifar") return TrainingDataFormat::kCifar;
  return absl::InvalidArgumentError(
      absl::StrCat("--data_format must be auto, idx, image_folder or cifar, got \"", name, "\""));
}

const char* TrainingDataFormatName(TrainingDataFormat format) {
  switch (format) {
    case TrainingDataFormat::kIdx:
      return "idx";
    case TrainingDataFormat::kImageFolder:
      return "image_folder";
    case TrainingDataFormat::kCifar:
      return "cifar";
    default:
      return "auto";
  }
}

absl::StatusOr<TrainingDataFormat> DetectTrainingDataFormat(const std::string& data_dir) {
  if (HasIdxFiles(data_dir)) return TrainingDataFormat::kIdx;
  if (DetectCifarVariant(data_dir).ok()) return TrainingDataFormat::kCifar;
  if (HasClassFolders(data_dir)) return TrainingDataFormat::kImageFolder;
  return absl::NotFoundError(absl::StrCat(
      data_dir,
      ": no data set found (looked for IDX files train-images-idx3-ubyte[.gz], CIFAR "
      "binaries data_batch_1.bin or train.bin, and class folders train/<class>/); give "
      "--data_format to be told what is missing"));
}

absl::StatusOr<PreprocessingKind> ParsePreprocessingKind(const std::string& name) {
  if (name == "default") return PreprocessingKind::kDefault;
  if (name == "inception") return PreprocessingKind::kInception;
  if (name == "pad_crop") return PreprocessingKind::kPadCrop;
  return absl::InvalidArgumentError(
      absl::StrCat("--preprocessing must be default, inception or pad_crop, got \"", name, "\""));
}

const std::vector<std::string>& FashionMnistClassNames() {
  static const std::vector<std::string>* const kNames =
      new std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return *kNames;
}

absl::Status CheckTrainingDataOptions(const TrainingDataOptions& o) {
  if (o.resolution < 1 || o.channels < 1) {
    return absl::InvalidArgumentError("training data: resolution and channels must be >= 1");
  }
  if (o.num_classes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--classes must be >= 0, got ", o.num_classes));
  }
  if (o.crop_padding < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--crop_padding must be >= 0, got ", o.crop_padding));
  }
  if (o.input_threads < 1 || o.input_threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--input_threads must be in [1, 64], got ", o.input_threads));
  }
  if (o.prefetch_batches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefetch_batches must be >= 1, got ", o.prefetch_batches));
  }
  if (o.eval_examples < 0) return absl::InvalidArgumentError("--eval_examples must be >= 0");
  return absl::OkStatus();
}

absl::StatusOr<TrainingData> OpenTrainingData(const TrainingDataOptions& options) {
  RETURN_IF_ERROR(CheckTrainingDataOptions(options));
  TrainingData data;
  data.format = options.format;
  if (data.format == TrainingDataFormat::kAuto) {
    ASSIGN_OR_RETURN(data.format, DetectTrainingDataFormat(options.data_dir));
    data.notes.push_back(absl::StrCat("data format ", TrainingDataFormatName(data.format),
                                      " (detected in ", options.data_dir, ")"));
  } else {
    data.notes.push_back(absl::StrCat("data format ", TrainingDataFormatName(data.format), " (",
                                      options.data_dir, ")"));
  }
  if (data.format == TrainingDataFormat::kCifar && options.channels != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: CIFAR images have 3 channels, the model --channels=%d (give --channels=3)",
        options.data_dir, options.channels));
  }
  const bool in_memory = data.format != TrainingDataFormat::kImageFolder;
  PreprocessingKind kind = options.preprocessing;
  if (kind == PreprocessingKind::kDefault) {
    kind = in_memory ? PreprocessingKind::kPadCrop : PreprocessingKind::kInception;
  }
  data.output_shape = {options.resolution, options.resolution, options.channels};

  // The image sources of each split: in-memory data sets are served as they are when
  // pad_crop (ShardBatchSource, EvaluationReader) and through DatasetImageSource otherwise.
  std::shared_ptr<const ImageSource> train_source, test_source;
  InMemorySplit train_memory, test_memory;
  int data_channels = options.channels;
  if (in_memory) {
    if (options.open_train) {
      ASSIGN_OR_RETURN(train_memory, ReadInMemorySplit(options, data.format, /*train=*/true));
    }
    if (options.open_test) {
      ASSIGN_OR_RETURN(test_memory, ReadInMemorySplit(options, data.format, /*train=*/false));
    }
    // Both splits of these formats have the same classes (the names come with the format).
    const InMemorySplit& first = options.open_train ? train_memory : test_memory;
    if (first.dataset == nullptr) {
      return absl::InvalidArgumentError("training data: neither split asked for");
    }
    data.class_names = first.class_names;
    data_channels = first.dataset->shape().channels;
    if (kind == PreprocessingKind::kInception) {
      if (options.open_train) {
        ASSIGN_OR_RETURN(train_source,
                         DatasetImageSource::Create(train_memory.dataset, train_memory.name));
      }
      if (options.open_test) {
        ASSIGN_OR_RETURN(test_source,
                         DatasetImageSource::Create(test_memory.dataset, test_memory.name));
      }
    }
  } else {
    if (options.open_train || !options.open_test) {
      ASSIGN_OR_RETURN(train_source, OpenCheckedImageFolder(options, "train", &data.notes));
    } else {
      // Evaluation only: the class names without checking every training image.
      ASSIGN_OR_RETURN(train_source,
                       ImageFolderSource::Open(options.data_dir, "train", options.channels));
    }
    data.class_names = train_source->class_names();
    if (options.open_test) {
      ASSIGN_OR_RETURN(test_source, OpenCheckedImageFolder(options, "test", &data.notes));
    }
  }
  if (options.num_classes > 0 && options.num_classes != data.num_classes()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the model has --classes=%d, the data set in %s has %d classes",
                        options.num_classes, options.data_dir, data.num_classes()));
  }
  const Normalization norm = NormalizationFor(options, data_channels);
  ASSIGN_OR_RETURN(const Preprocessing preprocessing, MakePreprocessing(options, kind, norm));
  // In-memory data with pad_crop: served as they are (ShardBatchSource, EvaluationReader).
  const PreprocessingConfig in_memory_config = PadCropConfig(options, norm.mean, norm.stddev);

  if (options.open_train) {
    const int train_size =
        train_source != nullptr ? train_source->size() : train_memory.dataset->size();
    data.train_examples = train_size;
    if (train_source == nullptr) {
      data.make_block_source =
          [dataset = train_memory.dataset, config = in_memory_config](
              const DataShard& shard) -> absl::StatusOr<std::unique_ptr<BatchSource>> {
        ASSIGN_OR_RETURN(std::unique_ptr<ShardBatchSource> source,
                         ShardBatchSource::Create(dataset, shard, config));
        return std::unique_ptr<BatchSource>(std::move(source));
      };
    } else {
      data.make_block_source =
          [source = train_source, shape = data.output_shape, preprocess = preprocessing.train,
           prefetch = PrefetchOptions{options.input_threads, options.batch_size,
                                      options.prefetch_batches}](
              const DataShard& shard) -> absl::StatusOr<std::unique_ptr<BatchSource>> {
        ASSIGN_OR_RETURN(
            std::unique_ptr<PrefetchingBatchSource> prefetching,
            PrefetchingBatchSource::Create(source, shard, shape, preprocess, prefetch));
        return std::unique_ptr<BatchSource>(std::move(prefetching));
      };
    }
    if (!options.leased) {
      ASSIGN_OR_RETURN(const DataShard shard, DataShard::Create(train_size, options.shard_index,
                                                                options.num_shards, options.seed));
      ASSIGN_OR_RETURN(data.train, data.make_block_source(shard));
    }
  }
  if (options.open_test) {
    const int eval_examples = options.eval_examples;
    const ImageShape shape = data.output_shape;
    if (test_source == nullptr) {
      // EvaluationReader ignores the flip and the padding.
      data.make_test_reader =
          [dataset = test_memory.dataset, config = in_memory_config,
           eval_examples]() -> absl::StatusOr<std::unique_ptr<EvaluationSource>> {
        ASSIGN_OR_RETURN(EvaluationReader reader,
                         EvaluationReader::Create(dataset, config, eval_examples));
        return std::unique_ptr<EvaluationSource>(
            std::make_unique<EvaluationReader>(std::move(reader)));
      };
    } else {
      data.make_test_reader =
          [source = test_source, shape, test = preprocessing.test,
           eval_examples]() -> absl::StatusOr<std::unique_ptr<EvaluationSource>> {
        ASSIGN_OR_RETURN(std::unique_ptr<ImageEvaluationReader> reader,
                         ImageEvaluationReader::Create(source, shape, test, eval_examples));
        return std::unique_ptr<EvaluationSource>(std::move(reader));
      };
    }
  }
  return data;
}

}  // namespace mobilenet
