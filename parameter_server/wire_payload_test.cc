#include "parameter_server/wire_payload.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"

namespace mobilenet {
namespace {

using ::testing::HasSubstr;

// A byte buffer of `bytes` cut into slices of at most `piece` bytes.
grpc::ByteBuffer Sliced(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t i = 0; i < bytes.size(); i += piece) {
    slices.emplace_back(bytes.data() + i, std::min(piece, bytes.size() - i));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

TEST(VarintTest, SizesAndEncodingMatchProtobuf) {
  for (uint64_t value : {0ull, 1ull, 127ull, 128ull, 300ull, 16383ull, 16384ull,
                         0xffffffffull, ~0ull}) {
    std::string encoded;
    AppendVarint(value, encoded);
    EXPECT_EQ(encoded.size(), VarintSize(value)) << value;
    ps::v1::PushRequest message;  // request_id is a uint64 varint field (4)
    message.set_request_id(value);
    std::string field;
    AppendVarintField(ps::v1::PushRequest::kRequestIdFieldNumber, value, field);
    EXPECT_EQ(field.size(), 1 + VarintSize(value));
    if (value != 0) {  // proto3 omits a zero
      EXPECT_EQ(field, message.SerializeAsString()) << value;
    }
  }
}

TEST(WireEncodingTest, HandBuiltPushRequestParsesAsTheProto) {
  ps::v1::PushRequest fields;
  fields.set_worker_id(3);
  fields.set_request_id(77);
  fields.set_model("alpha=1");
  const std::vector<float> gradients = {1.5f, -2.0f, 3.25f};
  std::string bytes = fields.SerializeAsString();
  AppendLengthDelimitedHeader(ps::v1::PushRequest::kGradientsFieldNumber,
                              gradients.size() * sizeof(float), bytes);
  bytes.append(reinterpret_cast<const char*>(gradients.data()), gradients.size() * sizeof(float));
  ps::v1::PushRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.worker_id(), 3);
  EXPECT_EQ(parsed.request_id(), 77u);
  EXPECT_EQ(parsed.model(), "alpha=1");
  ASSERT_EQ(parsed.gradients().size(), 12u);
  std::vector<float> decoded(3);
  std::memcpy(decoded.data(), parsed.gradients().data(), 12);
  EXPECT_EQ(decoded, gradients);
}

TEST(WireReaderTest, ReadsAProtoFieldByFieldAcrossSlices) {
  ps::v1::PullResponse response;
  response.set_version(123456);
  std::string payload(40, '\0');
  for (int i = 0; i < 40; ++i) payload[i] = static_cast<char>(i);
  response.set_parameters(payload);
  response.set_state("xyz");
  for (size_t piece : {1u, 3u, 7u, 1000u}) {
    WireReader reader(Sliced(response.SerializeAsString(), piece));
    int number = 0, wire_type = 0;
    std::string parameters, state;
    uint64_t version = 0;
    for (;;) {
      absl::StatusOr<bool> more = reader.NextField(number, wire_type);
      ASSERT_TRUE(more.ok()) << more.status();
      if (!*more) break;
      if (number == 1) {
        ASSERT_EQ(wire_type, kWireVarint);
        version = *reader.ReadVarint();
      } else if (number == 2) {
        const uint64_t length = *reader.ReadVarint();
        parameters.resize(length);
        ASSERT_TRUE(reader.ReadBytes(length, parameters.data()).ok());
      } else {
        ASSERT_TRUE(reader.SkipValue(wire_type).ok());
        state = "skipped";
      }
    }
    EXPECT_EQ(version, 123456u) << piece;
    EXPECT_EQ(parameters, payload) << piece;
    EXPECT_EQ(state, "skipped");
    EXPECT_EQ(reader.remaining(), 0u);
  }
}

TEST(WireEncodingTest, Fixed64FieldRoundTripsThroughProtobuf) {
  std::string bytes;
  AppendFixed64Field(ps::v1::PullResponse::kServerIncarnationFieldNumber,
                     0x0123456789abcdefULL, bytes);
  ps::v1::PullResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.server_incarnation(), 0x0123456789abcdefULL);

  ps::v1::PullResponse response;
  response.set_server_incarnation(0xfedcba9876543210ULL);
  for (size_t piece : {1u, 3u, 1000u}) {
    WireReader reader(Sliced(response.SerializeAsString(), piece));
    int number = 0, wire_type = 0;
    ASSERT_TRUE(*reader.NextField(number, wire_type));
    EXPECT_EQ(number, ps::v1::PullResponse::kServerIncarnationFieldNumber);
    ASSERT_EQ(wire_type, kWireFixed64);
    EXPECT_EQ(*reader.ReadFixed64(), 0xfedcba9876543210ULL) << piece;
  }
  WireReader truncated(Sliced(response.SerializeAsString().substr(0, 5), 2));
  int number = 0, wire_type = 0;
  ASSERT_TRUE(*truncated.NextField(number, wire_type));
  EXPECT_EQ(truncated.ReadFixed64().status().code(), absl::StatusCode::kDataLoss);
}

TEST(RetainPayloadMemoryTest, KeepsSixteenPayloadsWithinBounds) {
  EXPECT_EQ(RetainedHeapBytes(0), size_t{64} << 20);
  EXPECT_EQ(RetainedHeapBytes(size_t{5} << 20), size_t{80} << 20);  // alpha 0.5: ~5 MB
  EXPECT_EQ(RetainedHeapBytes(size_t{17} << 20), size_t{272} << 20);  // alpha 1.0: ~17 MB
  EXPECT_EQ(RetainedHeapBytes(size_t{1} << 30), size_t{512} << 20);
}

TEST(WireReaderTest, TruncatedMessagesAreDataLoss) {
  ps::v1::PullResponse response;
  response.set_parameters(std::string(100, 'a'));
  std::string bytes = response.SerializeAsString();
  bytes.resize(50);
  WireReader reader(Sliced(bytes, 16));
  int number = 0, wire_type = 0;
  ASSERT_TRUE(*reader.NextField(number, wire_type));
  const uint64_t length = *reader.ReadVarint();
  std::string out(length, '\0');
  absl::Status status = reader.ReadBytes(length, out.data());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("truncated"));

  WireReader bad_varint(Sliced(std::string("\x08\xff\xff", 3), 2));
  ASSERT_TRUE(*bad_varint.NextField(number, wire_type));
  EXPECT_EQ(bad_varint.ReadVarint().status().code(), absl::StatusCode::kDataLoss);

  WireReader bad_wire_type(Sliced(std::string("\x0b", 1), 1));  // field 1, wire type 3
  ASSERT_TRUE(*bad_wire_type.NextField(number, wire_type));
  EXPECT_EQ(bad_wire_type.SkipValue(wire_type).code(), absl::StatusCode::kDataLoss);
}

TEST(BorrowedMemoryTest, WaitsUntilEverySliceIsReleased) {
  const std::string data = "borrowed bytes";
  BorrowedMemory memory;
  grpc::ByteBuffer buffer;
  {
    grpc::Slice slice = memory.Borrow(data.data(), data.size());
    EXPECT_EQ(slice.begin(), reinterpret_cast<const uint8_t*>(data.data()));  // not copied
    buffer = grpc::ByteBuffer(&slice, 1);
  }
  EXPECT_EQ(Flatten(buffer), data);
  buffer.Clear();
  memory.WaitUntilReleased();  // returns: nothing holds the slice any more
}

TEST(SliceBufferPoolTest, ReleasedBuffersAreReused) {
  std::shared_ptr<SliceBufferPool> pool = SliceBufferPool::Create(2);
  std::unique_ptr<std::vector<char>> buffer = pool->Take(64);
  ASSERT_GE(buffer->size(), 64u);
  std::memcpy(buffer->data(), "payload", 7);
  const char* address = buffer->data();
  {
    grpc::Slice slice = pool->ToSlice(std::move(buffer), 7);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(slice.begin()), slice.size()), "payload");
  }
  std::unique_ptr<std::vector<char>> again = pool->Take(32);
  EXPECT_EQ(again->data(), address);
}

TEST(SliceBufferPoolTest, SlicesOutliveThePoolsOwner) {
  std::shared_ptr<SliceBufferPool> pool = SliceBufferPool::Create(1);
  std::unique_ptr<std::vector<char>> buffer = pool->Take(8);
  std::memcpy(buffer->data(), "12345678", 8);
  grpc::Slice slice = pool->ToSlice(std::move(buffer), 8);
  pool.reset();  // the slice keeps the pool alive
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(slice.begin()), 8), "12345678");
}

}  // namespace
}  // namespace mobilenet
