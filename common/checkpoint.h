// A checkpoint file: named float tensors, string metadata and int64 counters, every byte
// covered by a CRC-32 so a flipped bit or a torn file is refused rather than loaded.
//
// Layout (version 1, all integers little-endian):
//   header   "MNETCKPT" | u32 version | u32 record_count | u32 crc(previous 16 bytes)
//   record   u32 type | u64 payload_bytes | u32 crc(previous 12 bytes)
//            payload | u32 crc(payload)
//     type 1 metadata: u32 key_bytes | key | u32 value_bytes | value
//     type 2 counter:  u32 key_bytes | key | i64 value
//     type 3 tensor:   u32 name_bytes | name | u32 rank | i64 dims[rank] | f32 data[prod(dims)]
//   trailer  "MNCKEND\n" | u32 crc(every byte of the file before it)
// Records are written metadata first (key order), then counters (key order), then tensors
// (in the order given).
#ifndef MOBILENET_COMMON_CHECKPOINT_H_
#define MOBILENET_COMMON_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

inline constexpr uint32_t kCheckpointFormatVersion = 1;

struct CheckpointTensor {
  std::string name;
  std::vector<int64_t> shape;  // row-major; empty for a scalar
  std::vector<float> data;     // product(shape) floats
};

struct Checkpoint {
  std::map<std::string, std::string> metadata;  // e.g. "model_config", "optimizer"
  std::map<std::string, int64_t> counters;      // e.g. "global_step", "examples_seen"
  std::vector<CheckpointTensor> tensors;        // names unique

  // The tensor with this name, or null. Owned by this checkpoint.
  const CheckpointTensor* FindTensor(absl::string_view name) const;
};

// Writes `checkpoint` to `path` atomically: a temporary file in the same directory
// (".<basename>.tmp.XXXXXX") is written, flushed and fsync'ed, renamed over `path`, and
// the directory is fsync'ed, so `path` holds either its old contents or the complete new
// file. Errors: InvalidArgument for duplicate tensor names or data not matching the
// shape; the errno text naming the file for I/O failures (the temporary file is removed).
absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint);

// Reads and verifies a checkpoint. Errors name the file and the problem: NotFound
// (missing), InvalidArgument (not a checkpoint: wrong magic), Unimplemented (a format
// version this build does not read), DataLoss (checksum mismatch, truncation, malformed
// record). Lengths are bounded by the file size, so a corrupted length field never causes
// a large allocation.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_CHECKPOINT_H_
