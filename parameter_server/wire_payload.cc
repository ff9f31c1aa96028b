#include "parameter_server/wire_payload.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/strings/str_format.h"

namespace mobilenet {

size_t RetainedHeapBytes(size_t payload_bytes) {
  constexpr size_t kMin = size_t{64} << 20, kMax = size_t{512} << 20;
  return std::clamp(16 * payload_bytes, kMin, kMax);
}

void RetainPayloadMemory(size_t payload_bytes) {
  static absl::Mutex mu(absl::kConstInit);
  static size_t retained ABSL_GUARDED_BY(mu) = 0;
  const size_t wanted = RetainedHeapBytes(payload_bytes);
  absl::MutexLock lock(&mu);
  if (wanted <= retained) return;
  if (retained == 0) mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(wanted));
  retained = wanted;
}

void UseOneHeapArena() { mallopt(M_ARENA_MAX, 1); }

size_t ResidentBytes() {
  FILE* statm = fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int read = fscanf(statm, "%lu %lu", &size, &resident);
  fclose(statm);
  return read == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

size_t ReleaseFreeHeapMemory() {
  const size_t before = ResidentBytes();
  malloc_trim(0);
  const size_t after = ResidentBytes();
  return before > after ? before - after : 0;
}

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void AppendVarint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void AppendVarintField(int number, uint64_t value, std::string& out) {
  AppendVarint((static_cast<uint64_t>(number) << 3) | kWireVarint, out);
  AppendVarint(value, out);
}

void AppendFixed64Field(int number, uint64_t value, std::string& out) {
  AppendVarint((static_cast<uint64_t>(number) << 3) | kWireFixed64, out);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

void AppendLengthDelimitedHeader(int number, uint64_t length, std::string& out) {
  AppendVarint((static_cast<uint64_t>(number) << 3) | kWireLengthDelimited, out);
  AppendVarint(length, out);
}

BorrowedMemory::~BorrowedMemory() { WaitUntilReleased(); }

grpc::Slice BorrowedMemory::Borrow(const void* data, size_t size) {
  {
    absl::MutexLock lock(&mu_);
    ++outstanding_;
  }
  // gRPC never writes through a slice it sends.
  return grpc::Slice(const_cast<void*>(data), size, &BorrowedMemory::Release, this);
}

void BorrowedMemory::Release(void* self) {
  auto* memory = static_cast<BorrowedMemory*>(self);
  absl::MutexLock lock(&memory->mu_);
  --memory->outstanding_;
}

void BorrowedMemory::WaitUntilReleased() {
  absl::MutexLock lock(&mu_);
  const auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
  mu_.Await(absl::Condition(&released));
}

struct SliceBufferPool::Lease {
  std::shared_ptr<SliceBufferPool> pool;
  std::unique_ptr<std::vector<char>> buffer;
};

std::shared_ptr<SliceBufferPool> SliceBufferPool::Create(size_t max_idle) {
  return std::shared_ptr<SliceBufferPool>(new SliceBufferPool(max_idle));
}

std::unique_ptr<std::vector<char>> SliceBufferPool::Take(size_t size) {
  std::unique_ptr<std::vector<char>> buffer;
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      buffer = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (buffer == nullptr) buffer = std::make_unique<std::vector<char>>();
  if (buffer->size() < size) buffer->resize(size);
  return buffer;
}

grpc::Slice SliceBufferPool::ToSlice(std::unique_ptr<std::vector<char>> buffer, size_t size) {
  char* data = buffer->data();
  auto* lease = new Lease{shared_from_this(), std::move(buffer)};
  return grpc::Slice(data, size, &SliceBufferPool::ReleaseLease, lease);
}

void SliceBufferPool::ReleaseLease(void* lease) {
  std::unique_ptr<Lease> owned(static_cast<Lease*>(lease));
  owned->pool->GiveBack(std::move(owned->buffer));
}

void SliceBufferPool::GiveBack(std::unique_ptr<std::vector<char>> buffer) {
  absl::MutexLock lock(&mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(buffer));
}

WireReader::WireReader(const grpc::ByteBuffer& buffer) {
  // Dump only fails for an uninitialized buffer, which then reads as empty.
  if (buffer.Valid() && buffer.Dump(&slices_).ok()) {
    for (const grpc::Slice& slice : slices_) remaining_ += slice.size();
  }
}

absl::Status WireReader::Advance(size_t size, char* out) {
  if (size > remaining_) {
    return absl::DataLossError(absl::StrFormat(
        "message truncated: %d more bytes expected, %d left", size, remaining_));
  }
  remaining_ -= size;
  while (size > 0) {
    const grpc::Slice& slice = slices_[slice_];
    const size_t take = std::min(size, slice.size() - offset_);
    if (out != nullptr) {
      std::memcpy(out, slice.begin() + offset_, take);
      out += take;
    }
    size -= take;
    offset_ += take;
    if (offset_ == slice.size()) {
      ++slice_;
      offset_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> WireReader::ReadFixed64() {
  unsigned char bytes[8];
  absl::Status read = ReadBytes(8, reinterpret_cast<char*>(bytes));
  if (!read.ok()) return read;
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

absl::StatusOr<uint64_t> WireReader::ReadVarint() {
  uint64_t value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    char byte;
    absl::Status status = Advance(1, &byte);
    if (!status.ok()) return absl::DataLossError("message truncated inside a varint");
    value |= static_cast<uint64_t>(static_cast<unsigned char>(byte) & 0x7f) << shift;
    if ((static_cast<unsigned char>(byte) & 0x80) == 0) return value;
  }
  return absl::DataLossError("malformed message: varint longer than 10 bytes");
}

absl::StatusOr<bool> WireReader::NextField(int& number, int& wire_type) {
  if (remaining_ == 0) return false;
  absl::StatusOr<uint64_t> key = ReadVarint();
  if (!key.ok()) return key.status();
  number = static_cast<int>(*key >> 3);
  wire_type = static_cast<int>(*key & 7);
  if (number == 0) return absl::DataLossError("malformed message: field number 0");
  return true;
}

absl::Status WireReader::ReadBytes(size_t size, char* out) { return Advance(size, out); }

absl::Status WireReader::SkipValue(int wire_type) {
  switch (wire_type) {
    case kWireVarint:
      return ReadVarint().status();
    case 1:  // 64-bit
      return Advance(8, nullptr);
    case kWireLengthDelimited: {
      absl::StatusOr<uint64_t> length = ReadVarint();
      if (!length.ok()) return length.status();
      return Advance(*length, nullptr);
    }
    case 5:  // 32-bit
      return Advance(4, nullptr);
    default:
      return absl::DataLossError(
          absl::StrFormat("malformed message: unsupported wire type %d", wire_type));
  }
}

}  // namespace mobilenet
