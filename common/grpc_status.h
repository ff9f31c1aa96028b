// The RPC edge: the only place absl::Status and grpc::Status are converted into each
// other, and the message size limits both ends of the parameter-server protocol use.
// Header-only so that mobilenet_common needs no gRPC; include it only from code that
// links gRPC (parameter_server/, worker/).
#ifndef MOBILENET_COMMON_GRPC_STATUS_H_
#define MOBILENET_COMMON_GRPC_STATUS_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <grpc/impl/codegen/grpc_types.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

// Room for a message's fields besides its float payloads (ids, versions, the model text).
inline constexpr int64_t kMessageFieldsMargin = 64 << 10;

// The largest message of the protocol that carries `payload_bytes` of float payloads (a
// shard's weights and statistics in a pull, its gradients and statistics in a push):
// what a server of that shard accepts and a client of it receives, and no more.
inline int MessageLimitForPayload(int64_t payload_bytes) {
  const int64_t limit = payload_bytes + kMessageFieldsMargin;
  return static_cast<int>(std::min<int64_t>(limit, std::numeric_limits<int>::max()));
}

// Messages without float payloads (status, evaluations, finishing) stay far below this.
inline constexpr int kSmallMessageLimit = 4 << 20;

// Integer channel arguments both ends set (server builder and client channels): the
// message limit, and settings so that multi-megabyte messages move in few large frames
// and reads instead of gRPC's 16 KiB frames, 64 KiB stream window and 8 KiB reads.
inline std::vector<std::pair<const char*, int>> LargeMessageChannelArguments(int message_limit) {
  return {
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, message_limit},
      {GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, message_limit},
      {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20},
      {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (16 << 20) - 1},
      {GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20},
      {GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10},
      {GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 8 << 20},
  };
}

// Same code (the two enums share the canonical numbering) and message. OK maps to OK.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// Same code and message, the message prefixed with `context` and ": " when `context` is
// not empty (e.g. "parameter server 1 (10.0.0.2:2222) Push"). OK maps to OK.
inline absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context = {}) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (context.empty()) return absl::Status(code, status.error_message());
  return absl::Status(code, absl::StrCat(context, ": ", status.error_message()));
}

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_GRPC_STATUS_H_
