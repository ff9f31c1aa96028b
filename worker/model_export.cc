#include "worker/model_export.h"

#include <vector>

#include "common/status_macros.h"
#include "model/onnx_export.h"

namespace mobilenet {

absl::StatusOr<ModelVersion> ExportModelFromServers(const MobileNetV1& model,
                                                    ParameterClient& client, WeightsKind weights,
                                                    const std::string& path,
                                                    const std::vector<std::string>& class_names) {
  std::vector<float> params(model.parameter_layout().total_size());
  std::vector<float> state(model.state_layout().total_size());
  ASSIGN_OR_RETURN(ModelVersion version,
                   client.Pull(absl::MakeSpan(params), absl::MakeSpan(state), weights));
  ASSIGN_OR_RETURN(onnx::ModelProto onnx_model,
                   ExportOnnx(model.architecture(), model.parameter_layout(), params.data(),
                              model.state_layout(), state.data()));
  RETURN_IF_ERROR(
      SetOnnxClassNames(class_names, model.architecture().config.num_classes, onnx_model));
  RETURN_IF_ERROR(WriteOnnx(path, onnx_model));
  return version;
}

}  // namespace mobilenet
