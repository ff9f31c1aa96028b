// The input pipeline's command-line flags (preprocessing, normalization, bad images,
// decoding threads), shared by mobilenet-worker and mobilenet-ctl eval. --data_dir and
// --data_format are each binary's own (mobilenet-ctl's serve other commands too).
#ifndef MOBILENET_WORKER_TRAINING_DATA_FLAGS_H_
#define MOBILENET_WORKER_TRAINING_DATA_FLAGS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "worker/training_data.h"

namespace mobilenet {

// True for the file defining these flags (for absl::FlagsUsageConfig).
bool IsTrainingDataFlagsFile(absl::string_view path);

// Sets the preprocessing, normalization, --skip_bad_images, --input_threads and
// --prefetch_batches fields of `options` from the flags. InvalidArgument naming the flag
// when --preprocessing, --mean or --std does not parse.
absl::Status TrainingDataOptionsFromFlags(TrainingDataOptions& options);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_TRAINING_DATA_FLAGS_H_
