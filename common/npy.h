// NumPy .npy files of float32: reading (format versions 1.0, 2.0 and 3.0, dtype '<f4',
// C order, any shape) and writing (version 1.0). Enough to exchange inputs, weights and
// outputs with Python tools; nothing else of NumPy's format (no pickles, no other dtypes).
#ifndef MOBILENET_COMMON_NPY_H_
#define MOBILENET_COMMON_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mobilenet {

struct NpyArray {
  std::vector<int64_t> shape;  // empty for a 0-d array
  std::vector<float> data;     // product(shape) floats, C order
};

// Reads `path`. Errors name the file and the problem: NotFound (missing),
// InvalidArgument (not an .npy file, unsupported version, malformed header, dtype other
// than '<f4' (the message names it), fortran_order True), DataLoss (data shorter or
// longer than the shape says). Sizes are bounded by the file size before allocating.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path);

// Writes a float32 C-order array (format 1.0, dtype '<f4'). InvalidArgument if
// data.size() is not the product of `shape` or a dimension is negative; the errno text
// naming the file on I/O failure.
absl::Status WriteNpy(const std::string& path, absl::Span<const int64_t> shape,
                      absl::Span<const float> data);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_NPY_H_
