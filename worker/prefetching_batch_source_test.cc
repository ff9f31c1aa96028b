#include "worker/prefetching_batch_source.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "input/inception_preprocessing.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

constexpr int kNumClasses = 5;

// Image i is (8 + i % 7) x (9 + i % 5) x 3 with pixels from i; Load optionally sleeps a
// few milliseconds (different per image, so threads finish out of order) and fails for
// `bad_index`.
class FakeImageSource : public ImageSource {
 public:
  explicit FakeImageSource(int size, bool slow = false, int bad_index = -1)
      : size_(size), slow_(slow), bad_index_(bad_index) {
    for (int c = 0; c < kNumClasses; ++c) names_.push_back(absl::StrCat("class", c));
  }
  int size() const override { return size_; }
  int num_classes() const override { return kNumClasses; }
  const std::vector<std::string>& class_names() const override { return names_; }
  int label(int index) const override { return index % kNumClasses; }
  int channels() const override { return 3; }
  std::string Describe(int index) const override { return absl::StrCat("img", index, ".jpg"); }
  absl::StatusOr<DecodedImage> Load(int index) const override {
    loads_.fetch_add(1);
    if (slow_) std::this_thread::sleep_for(std::chrono::milliseconds((index * 7) % 5));
    if (index == bad_index_) {
      return absl::DataLossError(absl::StrCat(Describe(index), ": truncated JPEG"));
    }
    DecodedImage image{8 + index % 7, 9 + index % 5, 3, {}};
    image.pixels.resize(static_cast<size_t>(image.height) * image.width * 3);
    for (size_t p = 0; p < image.pixels.size(); ++p) {
      image.pixels[p] = static_cast<uint8_t>(p * 31 + index * 17);
    }
    return image;
  }
  int loads() const { return loads_.load(); }

 private:
  int size_;
  bool slow_;
  int bad_index_;
  std::vector<std::string> names_;
  mutable std::atomic<int> loads_{0};
};

constexpr ImageShape kOutput{6, 5, 3};

std::shared_ptr<const InceptionPreprocessor> Preprocessor() {
  InceptionPreprocessingConfig config;
  config.output_height = kOutput.height;
  config.output_width = kOutput.width;
  absl::StatusOr<InceptionPreprocessor> p = InceptionPreprocessor::Create(config);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::make_shared<const InceptionPreprocessor>(*std::move(p));
}

PreprocessFunction Preprocess() {
  return [p = Preprocessor()](const DecodedImage& image, uint64_t seed, float* out) {
    return p->Preprocess(image, seed, out);
  };
}

DataShard Shard(int num_examples) {
  // Shard 1 of 2: 10 of 20 examples.
  absl::StatusOr<DataShard> shard = DataShard::Create(num_examples, 1, 2, /*seed=*/77);
  EXPECT_TRUE(shard.ok()) << shard.status();
  return *std::move(shard);
}

struct Batch {
  std::vector<float> images;
  std::vector<int> labels;
};

// The stream a single-threaded loop makes: positions [from, from + count).
Batch Reference(const ImageSource& source, const DataShard& shard, int64_t from, int count) {
  const PreprocessFunction preprocess = Preprocess();
  Batch batch{std::vector<float>(count * kOutput.elements()), std::vector<int>(count)};
  for (int i = 0; i < count; ++i) {
    const int64_t e = from + i;
    const int64_t epoch = e / shard.size();
    const int index = shard.EpochOrder(epoch)[e % shard.size()];
    absl::StatusOr<DecodedImage> image = source.Load(index);
    EXPECT_TRUE(image.ok());
    EXPECT_TRUE(preprocess(*image, shard.AugmentationSeed(epoch, index),
                           batch.images.data() + i * kOutput.elements())
                    .ok());
    batch.labels[i] = source.label(index);
  }
  return batch;
}

Batch Next(BatchSource* source, int batch_size) {
  Batch batch{std::vector<float>(batch_size * kOutput.elements()), std::vector<int>(batch_size)};
  const absl::Status status =
      source->NextBatch(batch_size, batch.images.data(), batch.labels.data());
  EXPECT_TRUE(status.ok()) << status;
  return batch;
}

std::unique_ptr<PrefetchingBatchSource> MustCreate(std::shared_ptr<const ImageSource> source,
                                                   const PrefetchOptions& options) {
  DataShard shard = Shard(source->size());
  absl::StatusOr<std::unique_ptr<PrefetchingBatchSource>> batches = PrefetchingBatchSource::Create(
      std::move(source), std::move(shard), kOutput, Preprocess(), options);
  EXPECT_TRUE(batches.ok()) << batches.status();
  return *std::move(batches);
}

void ExpectSame(const Batch& got, const Batch& want, const std::string& what) {
  EXPECT_EQ(got.labels, want.labels) << what;
  EXPECT_EQ(got.images, want.images) << what;
}

// `count` batches of options.batch_size from a new source equal the reference stream.
void ExpectReferenceBatches(const std::shared_ptr<const FakeImageSource>& source,
                            const PrefetchOptions& options, int count) {
  auto batches = MustCreate(source, options);
  const int size = options.batch_size;
  for (int i = 0; i < count; ++i) {
    ExpectSame(Next(batches.get(), size), Reference(*source, Shard(20), i * size, size),
               absl::StrCat("batch ", i));
  }
}

TEST(PrefetchingBatchSourceTest, SameBatchesAsSingleThreadedLoopAcrossEpochs) {
  auto source = std::make_shared<FakeImageSource>(20);
  const DataShard shard = Shard(20);
  for (int threads : {1, 2, 4}) {
    // A ring of 2 x 4 positions, shorter than the 10-example epoch; batches of 3, 4 and 7
    // run over epoch ends.
    auto batches = MustCreate(source, PrefetchOptions{threads, 4, 2});
    EXPECT_EQ(batches->examples_per_epoch(), 10);
    EXPECT_EQ(batches->num_classes(), kNumClasses);
    int64_t at = 0;
    for (int size : {3, 4, 7, 4, 4, 3, 7}) {
      ExpectSame(Next(batches.get(), size), Reference(*source, shard, at, size),
                 absl::StrCat(threads, " threads, from ", at));
      at += size;
    }
    EXPECT_EQ(batches->epoch(), 3);
    EXPECT_EQ(batches->position(), 2);
    EXPECT_EQ(batches->examples_seen(), 32);
  }
}

TEST(PrefetchingBatchSourceTest, RingLongerThanAnEpoch) {
  auto source = std::make_shared<FakeImageSource>(20);
  ExpectReferenceBatches(source, PrefetchOptions{2, 8, 4}, 5);  // 32 positions ahead
}

TEST(PrefetchingBatchSourceTest, SlowSourceStillGivesOrderedBatches) {
  auto source = std::make_shared<FakeImageSource>(20, /*slow=*/true);
  ExpectReferenceBatches(source, PrefetchOptions{4, 4, 2}, 6);
}

TEST(PrefetchingBatchSourceTest, SkipToResumesAtThePosition) {
  auto source = std::make_shared<FakeImageSource>(20, /*slow=*/true);
  auto batches = MustCreate(source, PrefetchOptions{2, 4, 2});
  Next(batches.get(), 4);
  batches->SkipTo(23);  // epoch 2, position 3
  EXPECT_EQ(batches->epoch(), 2);
  EXPECT_EQ(batches->position(), 3);
  ExpectSame(Next(batches.get(), 9), Reference(*source, Shard(20), 23, 9), "after SkipTo(23)");
  batches->SkipTo(1);  // backwards
  ExpectSame(Next(batches.get(), 4), Reference(*source, Shard(20), 1, 4), "after SkipTo(1)");
}

TEST(PrefetchingBatchSourceTest, LoadErrorSurfacesNamingTheFileAndReadingGoesOn) {
  const DataShard shard = Shard(20);
  const int bad = shard.EpochOrder(0)[5];  // the sixth example of epoch 0
  auto source = std::make_shared<FakeImageSource>(20, false, bad);
  auto batches = MustCreate(source, PrefetchOptions{2, 4, 2});
  Next(batches.get(), 4);
  std::vector<float> images(4 * kOutput.elements());
  std::vector<int> labels(4);
  const absl::Status status = batches->NextBatch(4, images.data(), labels.data());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("img", bad, ".jpg: truncated JPEG")));
  // Examples 4 and 5 (the bad one) were handed out; the caller may go on after it.
  EXPECT_EQ(batches->examples_seen(), 6);
  ExpectSame(Next(batches.get(), 4), Reference(*source, shard, 6, 4), "after the error");
}

TEST(PrefetchingBatchSourceTest, PreprocessingErrorNamesTheImage) {
  auto source = std::make_shared<FakeImageSource>(20);
  absl::StatusOr<std::unique_ptr<PrefetchingBatchSource>> batches = PrefetchingBatchSource::Create(
      source, Shard(20), kOutput,
      [](const DecodedImage&, uint64_t, float*) {
        return absl::InvalidArgumentError("image has 3 channels, expected 1");
      },
      PrefetchOptions{1, 2, 1});
  ASSERT_TRUE(batches.ok());
  std::vector<float> images(kOutput.elements());
  int label;
  const absl::Status status = (*batches)->NextBatch(1, images.data(), &label);
  EXPECT_THAT(std::string(status.message()),
              testing::MatchesRegex("img[0-9]+\\.jpg: image has 3 channels.*"));
}

TEST(PrefetchingBatchSourceTest, PrefetchIsBoundedAndDestructionStopsBlockedThreads) {
  auto source = std::make_shared<FakeImageSource>(20);
  {
    auto batches = MustCreate(source, PrefetchOptions{4, 3, 2});
    // Nobody consumes: the threads fill the 6-position ring, then block.
    for (int i = 0; i < 200 && source->loads() < 6; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(source->loads(), 6);
  }  // the destructor must wake and join all four
  auto slow = std::make_shared<FakeImageSource>(20, /*slow=*/true);
  auto batches = MustCreate(slow, PrefetchOptions{2, 4, 1});
  Next(batches.get(), 1);
  batches.reset();  // while threads are sleeping in Load
}

TEST(PrefetchingBatchSourceTest, RejectsBadArguments) {
  auto source = std::make_shared<FakeImageSource>(20);
  EXPECT_FALSE(PrefetchingBatchSource::Create(nullptr, Shard(20), kOutput, Preprocess(), {}).ok());
  EXPECT_THAT(PrefetchingBatchSource::Create(source, Shard(30), kOutput, Preprocess(), {})
                  .status()
                  .message(),
              HasSubstr("shard made for 30 examples, but the image source has 20"));
  EXPECT_FALSE(
      PrefetchingBatchSource::Create(source, Shard(20), kOutput, Preprocess(), {0, 4, 2}).ok());
  EXPECT_FALSE(
      PrefetchingBatchSource::Create(source, Shard(20), ImageShape{0, 5, 3}, Preprocess(), {})
          .ok());
  auto batches = MustCreate(source, PrefetchOptions{1, 2, 1});
  std::vector<float> images(kOutput.elements());
  int label;
  EXPECT_FALSE(batches->NextBatch(0, images.data(), &label).ok());
  EXPECT_FALSE(batches->NextBatch(1, nullptr, &label).ok());
  EXPECT_EQ(batches->examples_seen(), 0);
}

}  // namespace
}  // namespace mobilenet
