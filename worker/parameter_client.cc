#include "worker/parameter_client.h"

#include <tuple>

#include "absl/strings/str_format.h"
#include "common/gradient_ops.h"

namespace mobilenet {

std::string FormatTestScore(const TestScore& score) {
  return absl::StrFormat("test accuracy %.2f%% (%d/%d), test loss %.4f", 100 * score.accuracy(),
                         score.correct, score.examples, score.loss);
}

absl::Status CheckPushRequest(const PushRequest& request, const ParameterLayout& parameters,
                              const ParameterLayout& state, int num_servers) {
  if (static_cast<int64_t>(request.gradients.size()) != parameters.total_size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "push: %d gradient values, expected %d", request.gradients.size(), parameters.total_size()));
  }
  if (!request.batch_stats.empty() &&
      static_cast<int64_t>(request.batch_stats.size()) != state.total_size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "push: %d batch statistics, expected %d or none", request.batch_stats.size(),
        state.total_size()));
  }
  if (static_cast<int>(request.computed_from.shard_versions.size()) != num_servers) {
    return absl::InvalidArgumentError(
        absl::StrFormat("push: computed from %d shard versions, expected %d (one per server)",
                        request.computed_from.shard_versions.size(), num_servers));
  }
  for (const auto& [layout, values, what] :
       {std::make_tuple(&parameters, request.gradients, "gradient"),
        std::make_tuple(&state, request.batch_stats, "batch statistic")}) {
    const int64_t bad = FindNonFinite(values);
    if (bad < 0) continue;
    for (const TensorView& view : layout->views()) {
      if (bad < view.offset + view.size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("push: %s for %s[%d] is %g; expected finite values", what, view.name,
                            bad - view.offset, values[bad]));
      }
    }
  }
  return absl::OkStatus();
}

ps::v1::PullRequest MakePullRequest(const ShardingPlan& plan, int server, int32_t worker_id,
                                    bool include_state, WeightsKind weights, PullPurpose purpose) {
  ps::v1::PullRequest request;
  request.set_plan_fingerprint(plan.fingerprint());
  request.set_shard_index(server);
  request.set_include_state(include_state);
  request.set_worker_id(worker_id);
  request.set_model(plan.model());
  request.set_num_shards(plan.num_shards());
  request.set_weight_average(weights == WeightsKind::kAverage);
  request.set_training(purpose == PullPurpose::kTraining);
  return request;
}

void AddSyncFields(int server, int32_t worker_id, int64_t min_sync_step,
                   const std::optional<ps::v1::SyncDecision>& decision,
                   ps::v1::PullRequest& request) {
  if (server == 0) {
    request.set_min_sync_step(min_sync_step);
  } else if (decision.has_value() && worker_id >= 0) {
    *request.mutable_sync_decision() = *decision;
  }
}

ps::v1::PushRequest MakePushFields(const ShardingPlan& plan, int server, const PushRequest& request,
                                   double images_per_sec, int64_t steps) {
  ps::v1::PushRequest fields;
  fields.set_plan_fingerprint(plan.fingerprint());
  fields.set_shard_index(server);
  fields.set_worker_id(request.worker_id);
  fields.set_request_id(request.request_id);
  fields.set_computed_from_version(request.computed_from.shard_versions[server]);
  if (request.computed_from.shard_incarnations.size() ==
      static_cast<size_t>(plan.num_shards())) {
    fields.set_server_incarnation(request.computed_from.shard_incarnations[server]);
  }
  fields.set_example_count(request.example_count);
  fields.set_worker_images_per_sec(images_per_sec);
  fields.set_worker_steps(steps);
  fields.set_model(plan.model());
  fields.set_num_shards(plan.num_shards());
  if (request.computed_from.sync_step >= 0) fields.set_sync_step(request.computed_from.sync_step);
  fields.set_last_of_share(request.last_of_share);
  return fields;
}

ps::v1::EvaluationReport MakeEvaluationReport(const ShardingPlan& plan, int32_t worker_id,
                                              const EvaluationResult& result) {
  ps::v1::EvaluationReport report;
  report.set_plan_fingerprint(plan.fingerprint());
  report.set_worker_id(worker_id);
  report.set_global_step(result.global_step);
  report.set_examples(result.examples);
  report.set_correct(result.correct);
  report.set_loss(result.loss);
  report.set_average_examples(result.average.examples);
  report.set_average_correct(result.average.correct);
  report.set_average_loss(result.average.loss);
  for (const std::string& name : result.class_names) report.add_class_names(name);
  report.set_model(plan.model());
  report.set_num_shards(plan.num_shards());
  return report;
}

ps::v1::FinishRequest MakeFinishRequest(const ShardingPlan& plan, int32_t worker_id,
                                        bool training_complete) {
  ps::v1::FinishRequest request;
  request.set_plan_fingerprint(plan.fingerprint());
  request.set_worker_id(worker_id);
  request.set_training_complete(training_complete);
  request.set_model(plan.model());
  request.set_num_shards(plan.num_shards());
  return request;
}

ps::v1::LeaseRequest MakeLeaseRequest(const ShardingPlan& plan, int32_t worker_id,
                                      const ps::v1::DataPlan& data,
                                      const std::vector<ps::v1::DataBlock>& completed,
                                      const std::vector<ps::v1::DataBlock>& held) {
  ps::v1::LeaseRequest request;
  request.set_plan_fingerprint(plan.fingerprint());
  request.set_worker_id(worker_id);
  request.set_model(plan.model());
  request.set_num_shards(plan.num_shards());
  *request.mutable_data() = data;
  for (const ps::v1::DataBlock& block : completed) *request.add_completed() = block;
  for (const ps::v1::DataBlock& block : held) *request.add_held() = block;
  return request;
}

absl::StatusOr<std::vector<ps::v1::StatusResponse>> AllStatuses(ParameterClient& client) {
  std::vector<ps::v1::StatusResponse> statuses;
  for (absl::StatusOr<ps::v1::StatusResponse>& status : client.GetStatus()) {
    if (!status.ok()) return status.status();
    statuses.push_back(*std::move(status));
  }
  return statuses;
}

int64_t GlobalStep(const std::vector<ps::v1::StatusResponse>& statuses) {
  if (statuses.empty()) return 0;
  int64_t step = statuses[0].global_step();
  for (const ps::v1::StatusResponse& status : statuses) step = std::min(step, status.global_step());
  return step;
}

}  // namespace mobilenet
