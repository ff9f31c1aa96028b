// The RPC edge: the only place absl::Status and grpc::Status are converted into each
// other, and the message size limit both ends of the parameter-server protocol use.
// Header-only so that mobilenet_common needs no gRPC; include it only from code that
// links gRPC (parameter_server/, worker/).
#ifndef MOBILENET_COMMON_GRPC_STATUS_H_
#define MOBILENET_COMMON_GRPC_STATUS_H_

#include <string>
#include <utility>
#include <vector>

#include <grpc/impl/codegen/grpc_types.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

// Largest message either end sends or accepts. A full 1.0 MobileNet-224 shard payload is
// about 17 MB; this leaves room for much wider models while still refusing nonsense.
inline constexpr int kMaxGrpcMessageBytes = 512 << 20;

// Integer channel arguments both ends set (server builder and client channels) so that
// multi-megabyte messages move in few large frames and reads instead of gRPC's 16 KiB
// frames, 64 KiB stream window and 8 KiB reads.
inline std::vector<std::pair<const char*, int>> LargeMessageChannelArguments() {
  return {
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, kMaxGrpcMessageBytes},
      {GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, kMaxGrpcMessageBytes},
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
