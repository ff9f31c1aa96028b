// mobilenet-input-bench: how fast the image pipeline (load + Inception augmentation, on
// PrefetchingBatchSource threads) delivers 224x224 training images, and what feeding the
// training step through it costs against synthetic batches, side by side in one run.
//
//   mobilenet-input-bench --source=memory --input_threads=1,2 --batch=32
//   mobilenet-input-bench --source=jpeg_dir --image_dir=DIR [--write_jpegs=512]
//
// (a) pipeline alone: a fresh PrefetchingBatchSource per repetition (its ring starts empty),
//     timed from its creation until --pipeline_batches batches were copied out by NextBatch:
//     images/s of Load + preprocess + hand-out with N threads. With --source=memory, Load
//     is a copy of a 256x256x3 image kept in memory (augment-only, no decoding); with
//     --source=jpeg_dir it reads and decodes a JPEG of DIR/train/ (ImageFolderSource). Beside
//     it, the process CPU time per image, which a busy machine does not inflate.
// (b) training: one step is NextBatch + MobileNetV1::TrainStep (forward + backward, as
//     mobilenet-bench), from SyntheticBatchSource (random floats, no image work) and from
//     the pipeline running its threads beside the compute threads.
// Every figure is the median of the repetitions.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/benchmark_timing.h"
#include "common/file_contents.h"
#include "common/seeded_random.h"
#include "common/status_macros.h"
#include "input/image_encoder.h"
#include "input/image_folder_source.h"
#include "input/inception_preprocessing.h"
#include "model/initializer.h"
#include "model/layers/compute_threads.h"
#include "model/mobilenet_v1.h"
#include "worker/dataset_image_source.h"
#include "worker/prefetching_batch_source.h"
#include "worker/synthetic_source.h"

ABSL_FLAG(std::string, source, "memory",
          "Where images come from: memory (--memory_images random images of "
          "--memory_size^2 x 3 pixels, Load copies them) or jpeg_dir (the image folder "
          "--image_dir, decoded)");
ABSL_FLAG(std::string, image_dir, "",
          "The folder of --source=jpeg_dir: an image folder, whose train/ split is read");
ABSL_FLAG(int, write_jpegs, 0,
          "--source=jpeg_dir: first write this many --memory_size^2 JPEGs (ten classes) "
          "into --image_dir/train/");
ABSL_FLAG(int, memory_images, 256, "Images of --source=memory");
ABSL_FLAG(int, memory_size, 256, "Height and width of the images of --source=memory");
ABSL_FLAG(std::string, input_threads, "1,2", "Comma-separated pipeline thread counts to measure");
ABSL_FLAG(int, prefetch_batches, 4, "Batches the pipeline prepares ahead");
ABSL_FLAG(bool, color_distortion, true, "Colour distortion in the augmentation");
ABSL_FLAG(int, pipeline_batches, 8, "Batches pulled per repetition of (a)");
ABSL_FLAG(int, repetitions, 5, "Timed repetitions of (a), and timed steps of (b)");
ABSL_FLAG(bool, train, true, "Also measure (b), the training step");
ABSL_FLAG(double, alpha, 1.0, "Width multiplier");
ABSL_FLAG(int, resolution, 224, "Network input height and width (the pipeline's output)");
ABSL_FLAG(int, classes, 1000, "Number of classes of the model");
ABSL_FLAG(int, batch, 32, "Images per batch");
ABSL_FLAG(int, compute_threads, 2, "Compute threads of the training step");
ABSL_FLAG(int, warmup, 1, "Untimed training steps before each measurement of (b)");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the weights, the images and the augmentation");

namespace mobilenet {
namespace {

// Medians of one pipeline measurement.
struct PipelineRate {
  double images_per_second = 0;  // wall clock
  double cpu_ms_per_image = 0;   // process CPU time (all threads) per image
};

struct BenchOptions {
  std::vector<int> input_threads;
  int prefetch_batches = 0;
  int pipeline_batches = 0;
  int repetitions = 0;
  int batch = 0;
  int warmup = 0;
  int compute_threads = 0;
  uint64_t seed = 0;
  MobileNetConfig model;
};

absl::StatusOr<BenchOptions> ReadFlags() {
  BenchOptions o;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_input_threads), ',')) {
    int threads = 0;
    if (!absl::SimpleAtoi(part, &threads) || threads < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--input_threads must be a list of counts >= 1, got \"", part, "\" in it"));
    }
    o.input_threads.push_back(threads);
  }
  o.prefetch_batches = absl::GetFlag(FLAGS_prefetch_batches);
  o.pipeline_batches = absl::GetFlag(FLAGS_pipeline_batches);
  o.repetitions = absl::GetFlag(FLAGS_repetitions);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.compute_threads = absl::GetFlag(FLAGS_compute_threads);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.model.alpha = static_cast<float>(absl::GetFlag(FLAGS_alpha));
  o.model.resolution = absl::GetFlag(FLAGS_resolution);
  o.model.input_channels = 3;
  o.model.num_classes = absl::GetFlag(FLAGS_classes);
  if (o.prefetch_batches < 1 || o.pipeline_batches < 1 || o.repetitions < 1 || o.batch < 1 ||
      o.compute_threads < 1 || o.warmup < 0) {
    return absl::InvalidArgumentError(
        "--prefetch_batches, --pipeline_batches, --repetitions, --batch and --compute_threads "
        "must be >= 1, --warmup >= 0");
  }
  return o;
}

// --source=memory: random images kept decoded in memory; Load copies one out.
absl::StatusOr<std::shared_ptr<const ImageSource>> MemorySource(int images, int size, int classes,
                                                                uint64_t seed) {
  if (images < 1 || size < 1) {
    return absl::InvalidArgumentError("--memory_images and --memory_size must be >= 1");
  }
  const ImageShape shape{size, size, 3};
  std::vector<uint8_t> pixels(images * shape.elements());
  SplitMix64 rng(seed);
  for (size_t i = 0; i < pixels.size(); i += 8) {
    const uint64_t bits = rng.Next();
    for (size_t k = 0; k < 8 && i + k < pixels.size(); ++k) pixels[i + k] = bits >> (8 * k);
  }
  std::vector<int> labels(images);
  for (int& label : labels) label = static_cast<int>(rng.Uniform(classes));
  ASSIGN_OR_RETURN(Dataset dataset,
                   Dataset::Create(shape, classes, std::move(pixels), std::move(labels)));
  ASSIGN_OR_RETURN(
      std::unique_ptr<DatasetImageSource> source,
      DatasetImageSource::Create(std::make_shared<const Dataset>(std::move(dataset)), "memory"));
  return std::shared_ptr<const ImageSource>(std::move(source));
}

// Writes `count` JPEGs of size x size x 3 (quality 90) into DIR/train/<class>/, ten
// classes: smooth colour gradients with mild noise, which compress about as photographs
// do (pure noise would make decoding unrealistically slow).
absl::Status WriteBenchmarkJpegs(const std::string& dir, int count, int size, uint64_t seed) {
  SplitMix64 rng(seed);
  for (int i = 0; i < count; ++i) {
    DecodedImage image{size, size, 3, std::vector<uint8_t>(static_cast<size_t>(size) * size * 3)};
    const int phase = static_cast<int>(rng.Uniform(256));
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        uint8_t* p = &image.pixels[(static_cast<size_t>(y) * size + x) * 3];
        const int noise = static_cast<int>(rng.Uniform(16));
        p[0] = static_cast<uint8_t>((x + phase + noise) & 255);
        p[1] = static_cast<uint8_t>((y + 2 * phase + noise) & 255);
        p[2] = static_cast<uint8_t>(((x + y) / 2 + noise) & 255);
      }
    }
    JpegOptions options;
    options.quality = 90;
    ASSIGN_OR_RETURN(const std::string jpeg, EncodeJpeg(image, options));
    const std::string class_dir = absl::StrFormat("%s/train/class_%d", dir, i % 10);
    std::error_code error;
    std::filesystem::create_directories(class_dir, error);
    RETURN_IF_ERROR(WriteFileContents(absl::StrFormat("%s/%06d.jpg", class_dir, i), jpeg));
  }
  return absl::OkStatus();
}

// The ImageSource --source names.
absl::StatusOr<std::shared_ptr<const ImageSource>> OpenSource(const BenchOptions& o) {
  const std::string source = absl::GetFlag(FLAGS_source);
  if (source == "memory") {
    return MemorySource(absl::GetFlag(FLAGS_memory_images), absl::GetFlag(FLAGS_memory_size),
                        o.model.num_classes, o.seed);
  }
  if (source == "jpeg_dir") {
    const std::string dir = absl::GetFlag(FLAGS_image_dir);
    if (dir.empty()) return absl::InvalidArgumentError("--source=jpeg_dir needs --image_dir");
    if (absl::GetFlag(FLAGS_write_jpegs) > 0) {
      RETURN_IF_ERROR(WriteBenchmarkJpegs(dir, absl::GetFlag(FLAGS_write_jpegs),
                                          absl::GetFlag(FLAGS_memory_size), o.seed));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<ImageFolderSource> folder,
                     ImageFolderSource::Open(dir, "train", 3));
    if (folder->num_classes() > o.model.num_classes) {
      return absl::InvalidArgumentError(absl::StrFormat("%s has %d classes, more than --classes=%d",
                                                        dir, folder->num_classes(),
                                                        o.model.num_classes));
    }
    return std::shared_ptr<const ImageSource>(std::move(folder));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--source must be memory or jpeg_dir, got \"", source, "\""));
}

class Benchmark {
 public:
  static absl::StatusOr<Benchmark> Create(const BenchOptions& o) {
    ASSIGN_OR_RETURN(std::shared_ptr<const ImageSource> source, OpenSource(o));
    InceptionPreprocessingConfig config;
    config.output_height = o.model.resolution;
    config.output_width = o.model.resolution;
    config.color_distortion = absl::GetFlag(FLAGS_color_distortion);
    ASSIGN_OR_RETURN(InceptionPreprocessor preprocessor, InceptionPreprocessor::Create(config));
    ASSIGN_OR_RETURN(DataShard shard, DataShard::Whole(source->size(), o.seed));
    return Benchmark(o, std::move(source), std::move(shard),
                     std::make_shared<const InceptionPreprocessor>(std::move(preprocessor)));
  }

  const ImageSource& source() const { return *source_; }

  absl::StatusOr<std::unique_ptr<PrefetchingBatchSource>> MakePipeline(int threads) const {
    PreprocessFunction preprocess = [p = preprocessor_](const DecodedImage& image, uint64_t seed,
                                                        float* out) {
      return p->Preprocess(image, seed, out);
    };
    const ImageShape shape{o_.model.resolution, o_.model.resolution, 3};
    return PrefetchingBatchSource::Create(source_, shard_, shape, std::move(preprocess),
                                          PrefetchOptions{threads, o_.batch, o_.prefetch_batches});
  }

  // (a): a fresh pipeline with `threads` threads.
  absl::StatusOr<PipelineRate> MeasurePipeline(int threads) {
    std::vector<double> rates, cpu_ms;
    const double images = static_cast<double>(o_.pipeline_batches) * o_.batch;
    for (int r = 0; r < o_.repetitions; ++r) {
      absl::Status status;
      const double cpu_start = ProcessCpuSeconds();
      const double seconds = SecondsOf([&] {
        absl::StatusOr<std::unique_ptr<PrefetchingBatchSource>> pipeline = MakePipeline(threads);
        status = pipeline.status();
        for (int b = 0; status.ok() && b < o_.pipeline_batches; ++b) {
          status = (*pipeline)->NextBatch(o_.batch, images_.data(), labels_.data());
        }
      });
      const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
      RETURN_IF_ERROR(status);
      rates.push_back(images / seconds);
      cpu_ms.push_back(1e3 * cpu_seconds / images);
    }
    return PipelineRate{Median(std::move(rates)), Median(std::move(cpu_ms))};
  }

  // (b): median images/s of NextBatch from `batches` + one training step.
  absl::StatusOr<double> TrainingImagesPerSecond(BatchSource* batches) {
    if (net_ == nullptr) RETURN_IF_ERROR(MakeModel());
    absl::Status status;
    const double seconds = MedianSeconds(o_.warmup, o_.repetitions, [&] {
      if (!status.ok()) return;
      status = batches->NextBatch(o_.batch, images_.data(), labels_.data());
      if (status.ok()) {
        net_->TrainStep(params_.data(), images_.data(), labels_.data(), o_.batch, 0.1f,
                        gradients_.data(), batch_stats_.data());
      }
    });
    RETURN_IF_ERROR(status);
    return o_.batch / seconds;
  }

 private:
  Benchmark(const BenchOptions& o, std::shared_ptr<const ImageSource> source, DataShard shard,
            std::shared_ptr<const InceptionPreprocessor> preprocessor)
      : o_(o),
        source_(std::move(source)),
        shard_(std::move(shard)),
        preprocessor_(std::move(preprocessor)),
        images_(int64_t{o.batch} * o.model.resolution * o.model.resolution * 3),
        labels_(o.batch) {}

  absl::Status MakeModel() {
    ASSIGN_OR_RETURN(net_, MobileNetV1::Create(o_.model));
    SetComputeThreads(o_.compute_threads);
    params_.resize(net_->parameter_layout().total_size());
    InitializeAll(net_->parameter_layout(), o_.seed, params_.data());
    gradients_.resize(params_.size());
    batch_stats_.resize(net_->state_layout().total_size());
    return absl::OkStatus();
  }

  BenchOptions o_;
  std::shared_ptr<const ImageSource> source_;
  DataShard shard_;
  std::shared_ptr<const InceptionPreprocessor> preprocessor_;
  std::vector<float> images_;
  std::vector<int> labels_;
  std::unique_ptr<MobileNetV1> net_;
  std::vector<float> params_, gradients_, batch_stats_;
};

absl::Status Run(const BenchOptions& o) {
  ASSIGN_OR_RETURN(Benchmark bench, Benchmark::Create(o));
  const ImageSource& source = bench.source();
  absl::StatusOr<DecodedImage> first = source.Load(0);
  RETURN_IF_ERROR(first.status());
  std::printf(
      "source: %s, %d images (the first %dx%dx%d); output %dx%dx3, batch %d, "
      "colour distortion %s, prefetch %d batches; medians of %d repetitions\n",
      absl::GetFlag(FLAGS_source).c_str(), source.size(), first->height, first->width,
      first->channels, o.model.resolution, o.model.resolution, o.batch,
      absl::GetFlag(FLAGS_color_distortion) ? "on" : "off", o.prefetch_batches, o.repetitions);
  std::printf("(a) pipeline alone (load + augment + NextBatch copy), %d batches per repetition:\n",
              o.pipeline_batches);
  for (int threads : o.input_threads) {
    ASSIGN_OR_RETURN(PipelineRate rate, bench.MeasurePipeline(threads));
    std::printf("    %d input thread%s: %9.1f images/s  (%.2f CPU ms per image, all threads)\n",
                threads, threads == 1 ? " " : "s", rate.images_per_second, rate.cpu_ms_per_image);
  }
  if (!absl::GetFlag(FLAGS_train)) return absl::OkStatus();
  std::printf(
      "(b) training step (NextBatch + forward + backward), MobileNet-V1 alpha %g, %d "
      "classes, %d compute threads, %d warm-up steps:\n",
      o.model.alpha, o.model.num_classes, o.compute_threads, o.warmup);
  SyntheticConfig synthetic;
  synthetic.shape = ImageShape{o.model.resolution, o.model.resolution, 3};
  synthetic.num_classes = o.model.num_classes;
  synthetic.seed = o.seed;
  ASSIGN_OR_RETURN(std::unique_ptr<SyntheticBatchSource> random,
                   SyntheticBatchSource::Create(synthetic));
  ASSIGN_OR_RETURN(double synthetic_rate, bench.TrainingImagesPerSecond(random.get()));
  std::printf("    synthetic batches:                %9.2f images/s\n", synthetic_rate);
  for (int threads : o.input_threads) {
    ASSIGN_OR_RETURN(std::unique_ptr<PrefetchingBatchSource> pipeline, bench.MakePipeline(threads));
    ASSIGN_OR_RETURN(double rate, bench.TrainingImagesPerSecond(pipeline.get()));
    std::printf("    pipeline, %d input thread%s:       %9.2f images/s\n", threads,
                threads == 1 ? " " : "s", rate);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace mobilenet

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures the image pipeline's images/s alone and the training step's images/s fed "
      "by synthetic batches and by the pipeline.");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<mobilenet::BenchOptions> options = mobilenet::ReadFlags();
  absl::Status status = options.status();
  if (status.ok()) status = mobilenet::Run(*options);
  if (!status.ok()) {
    std::fprintf(stderr, "mobilenet-input-bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
