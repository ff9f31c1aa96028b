#include "worker/batch_statistics.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace mobilenet {

absl::Status UnbiasBatchVariances(const Architecture& arch, const ParameterLayout& state_layout,
                                  int batch, absl::Span<float> batch_stats) {
  if (batch < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("batch size %d, expected >= 1", batch));
  }
  if (static_cast<int64_t>(batch_stats.size()) != state_layout.total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("batch statistics hold %d floats, expected %d (the state layout)",
                        batch_stats.size(), state_layout.total_size()));
  }
  for (const ConvLayerSpec& conv : arch.convs) {
    ASSIGN_OR_RETURN(const TensorView* view,
                     state_layout.Find(absl::StrCat(conv.name, "/BatchNorm/moving_variance")));
    const int64_t m = static_cast<int64_t>(batch) * conv.out_h * conv.out_w;
    if (m < 2) continue;
    const float scale = static_cast<float>(static_cast<double>(m) / (m - 1));
    for (int64_t i = view->offset; i < view->offset + view->size; ++i) batch_stats[i] *= scale;
  }
  return absl::OkStatus();
}

}  // namespace mobilenet
