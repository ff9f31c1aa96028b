#include "common/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace mobilenet {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "checkpoint files are little-endian; tensor data is copied as is");

constexpr char kHeaderMagic[8] = {'M', 'N', 'E', 'T', 'C', 'K', 'P', 'T'};
constexpr char kTrailerMagic[8] = {'M', 'N', 'C', 'K', 'E', 'N', 'D', '\n'};
constexpr uint64_t kHeaderBytes = 20;        // magic, version, record count, crc
constexpr uint64_t kRecordHeaderBytes = 16;  // type, payload bytes, crc
constexpr uint64_t kCrcBytes = 4;
constexpr uint64_t kTrailerBytes = 12;  // magic, file crc
constexpr uint32_t kMaxRank = 32;

enum RecordType : uint32_t { kMetadataRecord = 1, kCounterRecord = 2, kTensorRecord = 3 };

uint32_t Crc(uint32_t crc, const void* data, size_t n) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(data), n));
}

uint32_t CrcCombine(uint32_t crc1, uint32_t crc2, uint64_t len2) {
  return static_cast<uint32_t>(crc32_combine(crc1, crc2, static_cast<z_off_t>(len2)));
}

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<char*>(&v), 8); }
void PutBytes(std::string* out, absl::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

absl::Status ErrnoError(int error, const std::string& path, absl::string_view what) {
  if (error == 0) return absl::UnknownError(absl::StrCat(path, ": ", what, " failed"));
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(path, ": ", what, ": ", std::strerror(error)));
}

// Appends to a FILE*, folding every byte into a CRC of the whole file.
class ChecksummedSink {
 public:
  explicit ChecksummedSink(std::FILE* file) : file_(file) {}

  // Writes n bytes; also folds them into *section_crc when given. False on I/O error.
  bool Write(const void* data, size_t n, uint32_t* section_crc = nullptr) {
    if (n == 0) return true;
    const uint32_t chunk = Crc(0, data, n);
    file_crc_ = CrcCombine(file_crc_, chunk, n);
    if (section_crc != nullptr) *section_crc = CrcCombine(*section_crc, chunk, n);
    return std::fwrite(data, 1, n, file_) == n;
  }
  bool Write(const std::string& s, uint32_t* section_crc = nullptr) {
    return Write(s.data(), s.size(), section_crc);
  }

  uint32_t file_crc() const { return file_crc_; }

 private:
  std::FILE* file_;
  uint32_t file_crc_ = 0;
};

// One record: header with its CRC, then `prefix` followed by `count` floats, then the
// payload CRC.
bool WriteRecord(ChecksummedSink* sink, RecordType type, const std::string& prefix,
                 const float* data, size_t count) {
  std::string header;
  PutU32(&header, type);
  PutU64(&header, prefix.size() + count * sizeof(float));
  PutU32(&header, Crc(0, header.data(), header.size()));
  uint32_t payload_crc = 0;
  std::string crc;
  bool ok = sink->Write(header) && sink->Write(prefix, &payload_crc) &&
            sink->Write(data, count * sizeof(float), &payload_crc);
  PutU32(&crc, payload_crc);
  return ok && sink->Write(crc);
}

absl::Status ValidateForWrite(const Checkpoint& checkpoint) {
  std::set<absl::string_view> names;
  for (const CheckpointTensor& t : checkpoint.tensors) {
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint tensor name \"", t.name, "\" appears twice"));
    }
    if (t.shape.size() > kMaxRank) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor \"", t.name, "\" has rank ",
                                                     t.shape.size(), ", at most ", kMaxRank,
                                                     " expected"));
    }
    uint64_t elements = 1;
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint tensor \"", t.name, "\" has negative dimension ", d));
      }
      overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements);
    }
    if (overflow && std::find(t.shape.begin(), t.shape.end(), 0) == t.shape.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint tensor \"", t.name, "\": shape overflows 64 bits"));
    }
    if (elements != t.data.size()) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor \"", t.name,
                                                     "\": shape holds ", elements,
                                                     " floats, data has ", t.data.size()));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteContents(std::FILE* file, const Checkpoint& checkpoint) {
  ChecksummedSink sink(file);
  std::string header(kHeaderMagic, sizeof(kHeaderMagic));
  PutU32(&header, kCheckpointFormatVersion);
  PutU32(&header, static_cast<uint32_t>(checkpoint.metadata.size() + checkpoint.counters.size() +
                                        checkpoint.tensors.size()));
  PutU32(&header, Crc(0, header.data(), header.size()));
  bool ok = sink.Write(header);
  for (const auto& [key, value] : checkpoint.metadata) {
    std::string prefix;
    PutBytes(&prefix, key);
    PutBytes(&prefix, value);
    ok = ok && WriteRecord(&sink, kMetadataRecord, prefix, nullptr, 0);
  }
  for (const auto& [key, value] : checkpoint.counters) {
    std::string prefix;
    PutBytes(&prefix, key);
    PutU64(&prefix, static_cast<uint64_t>(value));
    ok = ok && WriteRecord(&sink, kCounterRecord, prefix, nullptr, 0);
  }
  for (const CheckpointTensor& t : checkpoint.tensors) {
    std::string prefix;
    PutBytes(&prefix, t.name);
    PutU32(&prefix, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) PutU64(&prefix, static_cast<uint64_t>(d));
    ok = ok && WriteRecord(&sink, kTensorRecord, prefix, t.data.data(), t.data.size());
  }
  std::string trailer(kTrailerMagic, sizeof(kTrailerMagic));
  ok = ok && sink.Write(trailer);
  std::string crc;
  PutU32(&crc, sink.file_crc());
  ok = ok && sink.Write(crc);
  if (!ok) return absl::UnknownError("write failed");  // caller reports errno
  return absl::OkStatus();
}

// Reads a file of known size, refusing reads past its end and folding every byte into a
// CRC of the whole file.
class ChecksummedSource {
 public:
  ChecksummedSource(std::FILE* file, const std::string& path, uint64_t size)
      : file_(file), path_(path), size_(size) {}

  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return size_ - offset_; }
  uint32_t file_crc() const { return file_crc_; }

  // Reads exactly n bytes into out (also folded into *section_crc when given);
  // DataLoss naming `what` if the file ends first.
  absl::Status Read(void* out, uint64_t n, absl::string_view what,
                    uint32_t* section_crc = nullptr) {
    if (n > remaining()) {
      return absl::DataLossError(absl::StrCat(path_, ": truncated: ", what, " needs ", n,
                                              " bytes at offset ", offset_, ", the file has ",
                                              remaining(), " left"));
    }
    if (n == 0) return absl::OkStatus();
    if (std::fread(out, 1, n, file_) != n) {
      if (std::ferror(file_)) return ErrnoError(errno, path_, absl::StrCat("reading ", what));
      return absl::DataLossError(
          absl::StrCat(path_, ": file ended while reading ", what, " at offset ", offset_));
    }
    const uint32_t chunk = Crc(0, out, n);
    file_crc_ = CrcCombine(file_crc_, chunk, n);
    if (section_crc != nullptr) *section_crc = CrcCombine(*section_crc, chunk, n);
    offset_ += n;
    return absl::OkStatus();
  }

 private:
  std::FILE* file_;
  const std::string& path_;
  uint64_t size_;
  uint64_t offset_ = 0;
  uint32_t file_crc_ = 0;
};

// Cursor over a record payload held in memory.
class PayloadParser {
 public:
  PayloadParser(absl::string_view payload, std::string context)
      : rest_(payload), context_(std::move(context)) {}

  absl::Status Bytes(absl::string_view what, std::string* out) {
    uint32_t n = 0;
    RETURN_IF_ERROR(U32(what, &n));
    if (n > rest_.size()) return Malformed(absl::StrCat(what, " length ", n, " exceeds payload"));
    out->assign(rest_.data(), n);
    rest_.remove_prefix(n);
    return absl::OkStatus();
  }
  absl::Status U32(absl::string_view what, uint32_t* out) {
    if (rest_.size() < 4) return Malformed(absl::StrCat("payload ends inside ", what));
    *out = GetU32(rest_.data());
    rest_.remove_prefix(4);
    return absl::OkStatus();
  }
  absl::Status U64(absl::string_view what, uint64_t* out) {
    if (rest_.size() < 8) return Malformed(absl::StrCat("payload ends inside ", what));
    *out = GetU64(rest_.data());
    rest_.remove_prefix(8);
    return absl::OkStatus();
  }
  absl::Status Done() {
    if (!rest_.empty()) return Malformed(absl::StrCat(rest_.size(), " unexpected payload bytes"));
    return absl::OkStatus();
  }
  absl::Status Malformed(absl::string_view problem) const {
    return absl::DataLossError(absl::StrCat(context_, ": malformed: ", problem));
  }

 private:
  absl::string_view rest_;
  std::string context_;
};

absl::Status CheckPayloadCrc(ChecksummedSource* in, uint32_t payload_crc,
                             const std::string& context) {
  char crc[kCrcBytes];
  RETURN_IF_ERROR(in->Read(crc, kCrcBytes, absl::StrCat(context, " checksum")));
  if (GetU32(crc) != payload_crc) {
    return absl::DataLossError(absl::StrCat(context, ": payload checksum mismatch (stored 0x",
                                            absl::Hex(GetU32(crc)), ", computed 0x",
                                            absl::Hex(payload_crc), ")"));
  }
  return absl::OkStatus();
}

// Reads a tensor payload of `payload_bytes`, streaming the float data into place.
absl::Status ReadTensorRecord(ChecksummedSource* in, uint64_t payload_bytes,
                              const std::string& context, Checkpoint* checkpoint,
                              std::set<std::string>* names) {
  uint32_t payload_crc = 0;
  uint64_t left = payload_bytes;
  auto malformed = [&](absl::string_view problem) {
    return absl::DataLossError(absl::StrCat(context, ": malformed tensor: ", problem));
  };
  char word[8];
  if (left < 4) return malformed("payload ends inside the name length");
  RETURN_IF_ERROR(in->Read(word, 4, "tensor name length", &payload_crc));
  left -= 4;
  const uint32_t name_bytes = GetU32(word);
  if (name_bytes > left) {
    return malformed(absl::StrCat("name length ", name_bytes, " exceeds payload"));
  }
  CheckpointTensor tensor;
  tensor.name.resize(name_bytes);
  RETURN_IF_ERROR(in->Read(tensor.name.data(), name_bytes, "tensor name", &payload_crc));
  left -= name_bytes;
  if (left < 4) return malformed("payload ends inside the rank");
  RETURN_IF_ERROR(in->Read(word, 4, "tensor rank", &payload_crc));
  left -= 4;
  const uint32_t rank = GetU32(word);
  if (rank > kMaxRank || uint64_t{rank} * 8 > left) {
    return malformed(absl::StrCat("rank ", rank, " does not fit the payload"));
  }
  for (uint32_t i = 0; i < rank; ++i) {
    RETURN_IF_ERROR(in->Read(word, 8, "tensor dimension", &payload_crc));
    const int64_t d = static_cast<int64_t>(GetU64(word));
    if (d < 0) return malformed(absl::StrCat("dimension ", i, " is ", d));
    tensor.shape.push_back(d);
  }
  left -= uint64_t{rank} * 8;
  // The element count, computed without overflow: bounded by what the payload can hold.
  const uint64_t max_elements = left / sizeof(float);
  uint64_t elements = 1;
  if (std::find(tensor.shape.begin(), tensor.shape.end(), 0) != tensor.shape.end()) {
    elements = 0;
  } else {
    for (uint32_t i = 0; i < rank; ++i) {
      const uint64_t d = static_cast<uint64_t>(tensor.shape[i]);
      if (d > max_elements / elements) {
        return malformed(absl::StrCat("dimension ", i, " is ", d, ", the shape holds more ",
                                      "floats than the payload's ", left, " bytes"));
      }
      elements *= d;
    }
  }
  if (elements * sizeof(float) != left) {
    return malformed(
        absl::StrCat("shape holds ", elements, " floats, payload has ", left, " data bytes"));
  }
  tensor.data.resize(elements);
  RETURN_IF_ERROR(in->Read(tensor.data.data(), left, "tensor data", &payload_crc));
  RETURN_IF_ERROR(CheckPayloadCrc(in, payload_crc, context));
  if (!names->insert(tensor.name).second) {
    return absl::DataLossError(
        absl::StrCat(context, ": tensor \"", tensor.name, "\" appears twice"));
  }
  checkpoint->tensors.push_back(std::move(tensor));
  return absl::OkStatus();
}

absl::Status ReadKeyValueRecord(ChecksummedSource* in, RecordType type, uint64_t payload_bytes,
                                const std::string& context, Checkpoint* checkpoint) {
  uint32_t payload_crc = 0;
  std::string payload(payload_bytes, '\0');
  RETURN_IF_ERROR(in->Read(payload.data(), payload_bytes, "record payload", &payload_crc));
  RETURN_IF_ERROR(CheckPayloadCrc(in, payload_crc, context));
  PayloadParser parser(payload, context);
  std::string key;
  RETURN_IF_ERROR(parser.Bytes("key", &key));
  bool inserted;
  if (type == kMetadataRecord) {
    std::string value;
    RETURN_IF_ERROR(parser.Bytes("value", &value));
    inserted = checkpoint->metadata.emplace(key, std::move(value)).second;
  } else {
    uint64_t value = 0;
    RETURN_IF_ERROR(parser.U64("value", &value));
    inserted = checkpoint->counters.emplace(key, static_cast<int64_t>(value)).second;
  }
  RETURN_IF_ERROR(parser.Done());
  if (!inserted) {
    return absl::DataLossError(absl::StrCat(context, ": key \"", key, "\" appears twice"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadContents(std::FILE* file, const std::string& path, uint64_t size) {
  ChecksummedSource in(file, path, size);
  char header[kHeaderBytes];
  const uint64_t magic_bytes = std::min<uint64_t>(size, sizeof(kHeaderMagic));
  RETURN_IF_ERROR(in.Read(header, magic_bytes, "magic"));
  if (std::memcmp(header, kHeaderMagic, magic_bytes) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a checkpoint: magic \"", absl::CEscape(absl::string_view(header, magic_bytes)),
        "\" expected \"MNETCKPT\""));
  }
  if (size < kHeaderBytes + kTrailerBytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", size,
                                            " bytes, a checkpoint has at least ",
                                            kHeaderBytes + kTrailerBytes));
  }
  RETURN_IF_ERROR(in.Read(header + magic_bytes, kHeaderBytes - magic_bytes, "header"));
  if (Crc(0, header, kHeaderBytes - kCrcBytes) != GetU32(header + 16)) {
    return absl::DataLossError(absl::StrCat(path, ": header checksum mismatch"));
  }
  const uint32_t version = GetU32(header + 8);
  if (version != kCheckpointFormatVersion) {
    return absl::UnimplementedError(absl::StrCat(path, ": checkpoint format version ", version,
                                                 ", this build reads version ",
                                                 kCheckpointFormatVersion));
  }
  const uint32_t record_count = GetU32(header + 12);
  const uint64_t smallest_record = kRecordHeaderBytes + kCrcBytes;
  if (record_count > (size - kHeaderBytes - kTrailerBytes) / smallest_record) {
    return absl::DataLossError(absl::StrCat(path, ": header claims ", record_count,
                                            " records, more than ", size,
                                            " bytes can hold (truncated?)"));
  }

  Checkpoint checkpoint;
  std::set<std::string> tensor_names;
  for (uint32_t i = 0; i < record_count; ++i) {
    const std::string context = absl::StrCat(path, ": record ", i, " at offset ", in.offset());
    char record[kRecordHeaderBytes];
    RETURN_IF_ERROR(in.Read(record, kRecordHeaderBytes, absl::StrCat("record ", i, " header")));
    if (Crc(0, record, 12) != GetU32(record + 12)) {
      return absl::DataLossError(absl::StrCat(context, ": header checksum mismatch"));
    }
    const uint32_t type = GetU32(record);
    const uint64_t payload_bytes = GetU64(record + 4);
    if (payload_bytes > in.remaining() ||
        payload_bytes + kCrcBytes + kTrailerBytes > in.remaining()) {
      return absl::DataLossError(absl::StrCat(context, ": truncated: payload of ", payload_bytes,
                                              " bytes, the file has ", in.remaining(), " left"));
    }
    switch (type) {
      case kMetadataRecord:
      case kCounterRecord:
        RETURN_IF_ERROR(ReadKeyValueRecord(&in, static_cast<RecordType>(type), payload_bytes,
                                           context, &checkpoint));
        break;
      case kTensorRecord:
        RETURN_IF_ERROR(ReadTensorRecord(&in, payload_bytes, context, &checkpoint, &tensor_names));
        break;
      default:
        return absl::DataLossError(absl::StrCat(context, ": unknown record type ", type));
    }
  }

  char trailer[kTrailerBytes];
  RETURN_IF_ERROR(in.Read(trailer, sizeof(kTrailerMagic), "trailer"));
  const uint32_t file_crc = in.file_crc();
  RETURN_IF_ERROR(in.Read(trailer + sizeof(kTrailerMagic), kCrcBytes, "trailer checksum"));
  if (std::memcmp(trailer, kTrailerMagic, sizeof(kTrailerMagic)) != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": trailer magic missing after ", record_count, " records"));
  }
  if (GetU32(trailer + sizeof(kTrailerMagic)) != file_crc) {
    return absl::DataLossError(absl::StrCat(path, ": whole-file checksum mismatch"));
  }
  if (in.remaining() != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", in.remaining(), " unexpected bytes after the trailer"));
  }
  return checkpoint;
}

}  // namespace

const CheckpointTensor* Checkpoint::FindTensor(absl::string_view name) const {
  for (const CheckpointTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint) {
  RETURN_IF_ERROR(ValidateForWrite(checkpoint));
  const std::filesystem::path target(path);
  std::string directory = target.parent_path().string();
  if (directory.empty()) directory = ".";
  std::string temp_path =
      (std::filesystem::path(directory) / ("." + target.filename().string() + ".tmp.XXXXXX"))
          .string();
  const int fd = mkstemp(temp_path.data());
  if (fd < 0) return ErrnoError(errno, path, "creating a temporary file in " + directory);
  std::FILE* file = fdopen(fd, "wb");
  if (file == nullptr) {
    const int error = errno;
    close(fd);
    unlink(temp_path.c_str());
    return ErrnoError(error, temp_path, "fdopen");
  }
  auto fail = [&](absl::string_view what) {
    const int error = errno;
    if (file != nullptr) std::fclose(file);
    unlink(temp_path.c_str());
    return ErrnoError(error, temp_path, what);
  };
  if (fchmod(fd, 0644) != 0) return fail("fchmod");
  if (!WriteContents(file, checkpoint).ok()) return fail("write");
  if (std::fflush(file) != 0) return fail("fflush");
  if (fsync(fd) != 0) return fail("fsync");
  const int close_result = std::fclose(file);
  file = nullptr;
  if (close_result != 0) return fail("close");
  if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
    return fail(absl::StrCat("rename to ", path));
  }
  const int dir_fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd < 0) return ErrnoError(errno, directory, "opening directory to fsync");
  const int sync_result = fsync(dir_fd);
  const int error = errno;
  close(dir_fd);
  if (sync_result != 0) return ErrnoError(error, directory, "fsync directory");
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return ErrnoError(errno, path, "cannot open checkpoint");
  struct stat st;
  if (fstat(fileno(file), &st) != 0) {
    const int error = errno;
    std::fclose(file);
    return ErrnoError(error, path, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    std::fclose(file);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  absl::StatusOr<Checkpoint> result = ReadContents(file, path, static_cast<uint64_t>(st.st_size));
  std::fclose(file);
  return result;
}

}  // namespace mobilenet
