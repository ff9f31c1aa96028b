// The float payloads of the ParameterServer protocol (PullResponse.parameters/state,
// PushRequest.gradients/batch_stats) sent and received without intermediate copies.
//
// The messages stay ordinary protobuf on the wire, so any client (grpcurl, the typed stubs)
// can talk to the servers; only the hot paths encode and decode the few fields around the
// payload by hand: a message is a sequence of fields in any order, so a payload can be
// a gRPC slice that references the sender's memory directly, and a receiver can copy a
// payload from the received slices straight to its destination.
#ifndef MOBILENET_PARAMETER_SERVER_WIRE_PAYLOAD_H_
#define MOBILENET_PARAMETER_SERVER_WIRE_PAYLOAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace mobilenet {

// Configures this process's allocator (glibc malloc) to keep freed memory for reuse
// instead of returning it to the system: blocks up to 32 MiB come from the heap, and the
// heap is trimmed only beyond 16 payloads of `payload_bytes` free (at least 64 MiB, at
// most 512 MiB). gRPC allocates its multi-megabyte read and write buffers per message,
// and on virtual machines faulting fresh pages in costs several times the copy itself (a
// full 1.0 MobileNet pull + push measured 4x slower without this). Called by
// ParameterService (with its shard's size), GrpcParameterClient and
// InProcessParameterClient (the model's); keeps
// the largest threshold asked for; thread-safe.
void RetainPayloadMemory(size_t payload_bytes);
// The heap trim threshold RetainPayloadMemory sets for `payload_bytes`.
size_t RetainedHeapBytes(size_t payload_bytes);

// Makes every thread allocate from one heap arena (glibc's M_ARENA_MAX), so that
// ReleaseFreeHeapMemory can give back all free memory: the heap tops of glibc's
// per-thread arenas are never trimmed, and after a burst of requests they would keep
// tens of MiB each. For server processes, whose allocations are few and large; call it
// before threads start allocating.
void UseOneHeapArena();

// This process's resident memory in bytes (/proc/self/statm), or 0 when unknown.
size_t ResidentBytes();

// Gives the heap memory that is free back to the system (glibc's malloc_trim over every
// arena), e.g. after a burst of requests left far more free than RetainPayloadMemory
// means to keep. Returns the resident bytes it released (0 when unknown).
size_t ReleaseFreeHeapMemory();

// Protobuf wire types used here.
inline constexpr int kWireVarint = 0;
inline constexpr int kWireFixed64 = 1;
inline constexpr int kWireLengthDelimited = 2;

// Bytes of `value` as a varint (1 to 10).
size_t VarintSize(uint64_t value);
// Appends `value` as a varint.
void AppendVarint(uint64_t value, std::string& out);
// Appends field `number`'s key with the varint wire type, then `value`.
void AppendVarintField(int number, uint64_t value, std::string& out);
// Appends field `number`'s key with the 64-bit wire type, then `value` little-endian.
void AppendFixed64Field(int number, uint64_t value, std::string& out);
// Appends field `number`'s key with the length-delimited wire type, then `length`: the
// header that precedes `length` bytes of a bytes field.
void AppendLengthDelimitedHeader(int number, uint64_t length, std::string& out);

// Counts the slices made over memory the caller owns, so the caller can wait until gRPC
// has released all of them before the memory may change. Thread-safe.
class BorrowedMemory {
 public:
  BorrowedMemory() = default;
  BorrowedMemory(const BorrowedMemory&) = delete;
  BorrowedMemory& operator=(const BorrowedMemory&) = delete;
  // Waits for every borrowed slice to be released (checked at destruction otherwise).
  ~BorrowedMemory();

  // A slice over `size` bytes at `data` (not copied; gRPC only reads it).
  grpc::Slice Borrow(const void* data, size_t size);
  // Blocks until gRPC has released every slice made by Borrow.
  void WaitUntilReleased();

 private:
  static void Release(void* self);

  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

// Reusable byte buffers handed to gRPC as slices: a leased buffer returns to the pool when
// gRPC releases its slice, so payload memory is neither allocated nor page-faulted in per
// call. Thread-safe; the pool lives as long as the longest-lived lease (shared ownership).
class SliceBufferPool : public std::enable_shared_from_this<SliceBufferPool> {
 public:
  // Keeps at most `max_idle` buffers between uses.
  static std::shared_ptr<SliceBufferPool> Create(size_t max_idle);

  // A buffer of at least `size` bytes (contents unspecified), owned by the caller until
  // it is handed to ToSlice.
  std::unique_ptr<std::vector<char>> Take(size_t size);
  // A slice over the first `size` bytes of `buffer` that returns the buffer to this pool
  // when gRPC releases it.
  grpc::Slice ToSlice(std::unique_ptr<std::vector<char>> buffer, size_t size);
  // Returns a buffer from Take that no slice was made of (e.g. used as scratch memory).
  void GiveBack(std::unique_ptr<std::vector<char>> buffer);

 private:
  explicit SliceBufferPool(size_t max_idle) : max_idle_(max_idle) {}
  struct Lease;
  static void ReleaseLease(void* lease);

  const size_t max_idle_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<std::vector<char>>> idle_ ABSL_GUARDED_BY(mu_);
};

// Reads a received message field by field across its slices. Not thread-safe.
class WireReader {
 public:
  // Reads `buffer` (its slices are referenced, not copied).
  explicit WireReader(const grpc::ByteBuffer& buffer);

  // Moves to the next field: true with its number and wire type, false at the end of the
  // message. DataLoss for a truncated or malformed key.
  absl::StatusOr<bool> NextField(int& number, int& wire_type);
  // The varint at the current position; DataLoss if truncated or longer than 10 bytes.
  absl::StatusOr<uint64_t> ReadVarint();
  // The little-endian 64-bit value at the current position; DataLoss if truncated.
  absl::StatusOr<uint64_t> ReadFixed64();
  // Copies the next `size` bytes to `out`; DataLoss if fewer remain.
  absl::Status ReadBytes(size_t size, char* out);
  // Skips the value of a field of `wire_type` (varint, 64-bit, length-delimited, 32-bit);
  // DataLoss for other wire types or a truncated value.
  absl::Status SkipValue(int wire_type);
  // Bytes not read yet.
  size_t remaining() const { return remaining_; }

 private:
  absl::Status Advance(size_t size, char* out);  // out may be null: skip

  std::vector<grpc::Slice> slices_;
  size_t slice_ = 0;     // current slice
  size_t offset_ = 0;    // within it
  size_t remaining_ = 0;
};

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_WIRE_PAYLOAD_H_
