// The end of a training: the model the parameter servers hold, pulled and written as
// ONNX. When the servers keep a weight average the export is of the average, which is
// what the Inception-v3 recipe MobileNet followed evaluated and shipped.
#ifndef MOBILENET_WORKER_MODEL_EXPORT_H_
#define MOBILENET_WORKER_MODEL_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/mobilenet_v1.h"
#include "parameter_server/core/parameter_shard.h"
#include "worker/parameter_client.h"

namespace mobilenet {

// kAverage when the servers keep a weight average, else kRaw.
inline WeightsKind ExportedWeights(bool servers_keep_average) {
  return servers_keep_average ? WeightsKind::kAverage : WeightsKind::kRaw;
}

// Pulls `weights` (and the moving statistics) of `model`'s layouts from `client` and
// writes them as an ONNX model at `path`, with `class_names` (if any) in its metadata
// (SetOnnxClassNames); returns the version pulled. Errors of the pull (e.g.
// FailedPrecondition for kAverage from servers keeping none) and of the export or the
// write, unchanged.
absl::StatusOr<ModelVersion> ExportModelFromServers(
    const MobileNetV1& model, ParameterClient& client, WeightsKind weights, const std::string& path,
    const std::vector<std::string>& class_names = {});

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_MODEL_EXPORT_H_
