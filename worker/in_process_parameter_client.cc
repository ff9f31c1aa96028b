#include "worker/in_process_parameter_client.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "parameter_server/wire_payload.h"

namespace mobilenet {
namespace {

// The error of server `i`, prefixed with its index as the gRPC client's are.
absl::Status ServerError(int i, absl::string_view rpc, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrFormat("parameter server %d (in process) %s: %s", i, rpc,
                                      status.message()));
}

}  // namespace

InProcessParameterClient::InProcessParameterClient(const ShardingPlan& plan,
                                                   std::vector<ParameterServerCore*> cores,
                                                   int32_t worker_id, const Caller& caller)
    : plan_(plan),
      cores_(std::move(cores)),
      routing_(RouteServers(plan_)),
      worker_id_(worker_id),
      caller_(caller) {}

absl::StatusOr<std::unique_ptr<InProcessParameterClient>> InProcessParameterClient::Create(
    const ShardingPlan& plan, std::vector<ParameterServerCore*> cores, int32_t worker_id,
    const Caller& caller) {
  if (static_cast<int>(cores.size()) != plan.num_shards()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d parameter server cores for a plan of %d", cores.size(), plan.num_shards()));
  }
  for (size_t i = 0; i < cores.size(); ++i) {
    if (cores[i] == nullptr || cores[i]->plan().fingerprint() != plan.fingerprint() ||
        cores[i]->identity().shard_index != static_cast<int>(i)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("core %d does not serve server %d of plan %s", i, i,
                          FormatFingerprint(plan.fingerprint())));
    }
  }
  // Every push copies its gradients into a message of the model's size: kept for reuse,
  // not returned to the system and faulted in again each step (measured 7% of
  // single-process training at alpha 0.5, 56x56).
  RetainPayloadMemory((plan.parameter_layout().total_size() + plan.state_layout().total_size()) *
                      sizeof(float));
  return std::unique_ptr<InProcessParameterClient>(
      new InProcessParameterClient(plan, std::move(cores), worker_id, caller));
}

void InProcessParameterClient::set_progress(double images_per_sec, int64_t steps) {
  absl::MutexLock lock(&mu_);
  images_per_sec_ = images_per_sec;
  steps_ = steps;
}

absl::StatusOr<ModelVersion> InProcessParameterClient::Pull(absl::Span<float> parameters,
                                                            absl::Span<float> state,
                                                            WeightsKind weights,
                                                            PullPurpose purpose,
                                                            int64_t min_sync_step) {
  if (static_cast<int64_t>(parameters.size()) != plan_.parameter_layout().total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pull: parameter buffer holds %d floats, expected %d", parameters.size(),
                        plan_.parameter_layout().total_size()));
  }
  if (!state.empty() && static_cast<int64_t>(state.size()) != plan_.state_layout().total_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pull: state buffer holds %d floats, expected %d (or none)", state.size(),
                        plan_.state_layout().total_size()));
  }
  ModelVersion version;
  std::vector<float> parameter_scratch, state_scratch;
  const bool sync = cores_[0]->identity().sync_replicas;
  SyncPullInfo sync_info;
  // Synchronous: server 0 first (it is asked in order anyway), its decision to the others.
  for (size_t i = 0; i < cores_.size(); ++i) {
    const ServerRouting& routing = routing_[i];
    const bool want_state = !state.empty() && routing.state.count > 0;
    ps::v1::PullRequest request =
        MakePullRequest(plan_, i, worker_id_, want_state, weights, purpose);
    if (sync) AddSyncFields(i, worker_id_, min_sync_step, sync_info.decision, request);
    absl::StatusOr<int64_t> shard_version = cores_[i]->Pull(
        caller_, request, routing.parameters.Target(parameters, parameter_scratch),
        want_state ? routing.state.Target(state, state_scratch) : absl::Span<float>(),
        i == 0 ? &sync_info : nullptr);
    if (!shard_version.ok()) return ServerError(i, "Pull", shard_version.status());
    if (sync && i == 0) {
      version.sync_step = sync_info.step;
      if (!sync_info.reached) {
        version.sync_reached = false;
        return version;
      }
    }
    version.shard_versions.push_back(*shard_version);
    version.shard_incarnations.push_back(cores_[i]->incarnation());
    routing.parameters.Scatter(parameter_scratch, parameters);
    if (want_state) routing.state.Scatter(state_scratch, state);
  }
  return version;
}

absl::StatusOr<PushResult> InProcessParameterClient::Push(const PushRequest& request) {
  RETURN_IF_ERROR(CheckPushRequest(request, plan_.parameter_layout(), plan_.state_layout(),
                                   plan_.num_shards()));
  double images_per_sec;
  int64_t steps;
  {
    absl::MutexLock lock(&mu_);
    images_per_sec = images_per_sec_;
    steps = steps_;
  }
  PushResult result;
  result.version.shard_versions.assign(cores_.size(), -1);
  absl::Status first_error;
  std::vector<float> scratch;
  // Synchronous: server 0 last, and only once every other server accepted.
  const bool sync = request.computed_from.sync_step >= 0;
  std::vector<size_t> order;
  for (size_t i = sync ? 1 : 0; i < cores_.size(); ++i) order.push_back(i);
  if (sync) order.push_back(0);
  for (const size_t i : order) {
    if (sync && i == 0 && !first_error.ok()) break;
    const ServerRouting& routing = routing_[i];
    ps::v1::PushRequest message = MakePushFields(plan_, i, request, images_per_sec, steps);
    const absl::Span<const float> gradients = routing.parameters.Gather(request.gradients, scratch);
    message.set_gradients(reinterpret_cast<const char*>(gradients.data()),
                          gradients.size() * sizeof(float));
    if (!request.batch_stats.empty() && routing.state.count > 0) {
      const absl::Span<const float> stats = routing.state.Gather(request.batch_stats, scratch);
      message.set_batch_stats(reinterpret_cast<const char*>(stats.data()),
                              stats.size() * sizeof(float));
    }
    ps::v1::PushResponse response;
    const absl::Status pushed = cores_[i]->Push(caller_, message, response);
    if (!pushed.ok()) {
      if (first_error.ok()) first_error = ServerError(i, "Push", pushed);
      continue;
    }
    if (i == 0) result.learning_rate = response.learning_rate();
    result.max_staleness = std::max(result.max_staleness, response.staleness());
    result.version.shard_versions[i] = response.version();
    result.sync_pending |= response.sync_pending();
  }
  if (!first_error.ok()) return first_error;
  return result;
}

std::vector<absl::StatusOr<ps::v1::StatusResponse>> InProcessParameterClient::GetStatus() {
  std::vector<absl::StatusOr<ps::v1::StatusResponse>> statuses;
  for (ParameterServerCore* core : cores_) statuses.push_back(core->GetStatus());
  return statuses;
}

absl::Status InProcessParameterClient::ReportEvaluation(int32_t worker_id,
                                                        const EvaluationResult& result) {
  const ps::v1::EvaluationReport report = MakeEvaluationReport(plan_, worker_id, result);
  for (size_t i = 0; i < cores_.size(); ++i) {
    const absl::Status reported = cores_[i]->ReportEvaluation(caller_, report);
    if (!reported.ok()) return ServerError(i, "ReportEvaluation", reported);
  }
  return absl::OkStatus();
}

absl::Status InProcessParameterClient::Finish(int32_t worker_id, bool training_complete) {
  const ps::v1::FinishRequest request = MakeFinishRequest(plan_, worker_id, training_complete);
  for (size_t i = 0; i < cores_.size(); ++i) {
    const absl::Status finished = cores_[i]->Finish(caller_, request);
    if (!finished.ok()) return ServerError(i, "Finish", finished);
  }
  return absl::OkStatus();
}

absl::StatusOr<ps::v1::LeaseResponse> InProcessParameterClient::LeaseData(
    int32_t worker_id, const ps::v1::DataPlan& data,
    const std::vector<ps::v1::DataBlock>& completed, const std::vector<ps::v1::DataBlock>& held) {
  const ps::v1::LeaseRequest request = MakeLeaseRequest(plan_, worker_id, data, completed, held);
  ps::v1::LeaseResponse response;
  const absl::Status leased = cores_[0]->LeaseData(caller_, request, response);
  if (!leased.ok()) return ServerError(0, "LeaseData", leased);
  return response;
}

}  // namespace mobilenet
