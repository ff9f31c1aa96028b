// The protocol's PayloadDtype and the conversions' WireDtype (common/float_conversion.h)
// are one set of values under two names: the protocol's for messages, the conversions'
// for code that knows no protocol.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_PAYLOAD_DTYPE_H_
#define MOBILENET_PARAMETER_SERVER_CORE_PAYLOAD_DTYPE_H_

#include "common/float_conversion.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"

namespace mobilenet {

static_assert(static_cast<int>(WireDtype::kFloat32) == ps::v1::PAYLOAD_DTYPE_FLOAT32 &&
                  static_cast<int>(WireDtype::kBfloat16) == ps::v1::PAYLOAD_DTYPE_BFLOAT16 &&
                  static_cast<int>(WireDtype::kFloat16) == ps::v1::PAYLOAD_DTYPE_FLOAT16 &&
                  ps::v1::PayloadDtype_MAX == ps::v1::PAYLOAD_DTYPE_FLOAT16,
              "WireDtype and PayloadDtype must list the same formats");

inline ps::v1::PayloadDtype ToPayloadDtype(WireDtype dtype) {
  return static_cast<ps::v1::PayloadDtype>(dtype);
}

// The format of a validated request's field; a value outside PayloadDtype (refused by
// validation) reads as float32.
inline WireDtype ToWireDtype(int payload_dtype) {
  return ps::v1::PayloadDtype_IsValid(payload_dtype) ? static_cast<WireDtype>(payload_dtype)
                                                     : WireDtype::kFloat32;
}

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_PAYLOAD_DTYPE_H_
