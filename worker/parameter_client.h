// The interface a worker (and a tool) talks to the parameter servers through: the whole
// mobilenet.ps.v1.ParameterServer protocol for the whole model. Pull and Push take
// full-model buffers, which implementations route to the servers holding each range: in
// the same process (in_process_parameter_client.h) or over gRPC
// (grpc_parameter_client.h).
#ifndef MOBILENET_WORKER_PARAMETER_CLIENT_H_
#define MOBILENET_WORKER_PARAMETER_CLIENT_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "model/parameter_layout.h"
#include "parameter_server/core/parameter_shard.h"
#include "parameter_server/core/sharding_plan.h"

namespace mobilenet {

// The version of every shard at a pull, in the client's shard order. Each shard counts
// its own pushes; a push carries back the versions its gradients were computed from.
struct ModelVersion {
  std::vector<int64_t> shard_versions;
  // Which run of each shard's server served the pull (PullResponse.server_incarnation),
  // in the same order. A push carries it back so that a restarted server refuses
  // gradients computed from its earlier run.
  std::vector<uint64_t> shard_incarnations;
  // --sync_replicas: the step server 0 was at (PullResponse.sync_step), which a push
  // carries back; -1 when the servers train asynchronously.
  int64_t sync_step = -1;
  // False when server 0 had not reached the pull's min_sync_step: nothing was read (the
  // buffers are untouched and the versions empty); pull again a little later.
  bool sync_reached = true;

  // The smallest shard version (pushes applied everywhere); 0 when there are no shards.
  int64_t global_step() const {
    return shard_versions.empty() ? 0
                                  : *std::min_element(shard_versions.begin(), shard_versions.end());
  }
};

// One training step's contribution. The spans are not owned and must outlive the call.
struct PushRequest {
  int32_t worker_id = 0;
  // Unique per worker; resending the same request (e.g. after a transport error) is
  // applied at most once by every shard.
  uint64_t request_id = 0;
  ModelVersion computed_from;  // as returned by the Pull the gradients were computed on
  int64_t example_count = 0;   // batch size, >= 1
  // The full parameter layout: d loss / d weights, weight decay and clipping applied.
  absl::Span<const float> gradients;
  // Empty, or the full state layout: batch means and UNBIASED batch variances (see
  // worker/batch_statistics.h).
  absl::Span<const float> batch_stats;
  // The worker pushes no more in this run (PushRequest.last_of_share).
  bool last_of_share = false;
};

struct PushResult {
  ModelVersion version;        // every shard's version once this push is counted
  int64_t max_staleness = 0;   // over shards
  float learning_rate = 0.0f;  // the rate the first shard applied
  // --sync_replicas: server 0 counted the gradients towards their step, which closes
  // when enough have come (pull with min_sync_step = that step + 1 to wait for it).
  bool sync_pending = false;
};

// A model's score on a test set.
struct TestScore {
  int64_t examples = 0;  // 0: not evaluated
  int64_t correct = 0;
  double loss = 0;
  double accuracy() const { return examples ? static_cast<double>(correct) / examples : 0; }
};

// "test accuracy 91.21% (9121/10000), test loss 0.3126".
std::string FormatTestScore(const TestScore& score);

// The chief's evaluation of the weights at one global step.
struct EvaluationResult {
  int64_t examples = 0;
  int64_t correct = 0;
  double loss = 0;          // mean cross-entropy (no label smoothing)
  int64_t global_step = 0;  // of the weights evaluated
  // The same test set on the servers' weight average (--weight_ema_decay > 0), pulled
  // right after the weights; examples == 0 when not evaluated.
  TestScore average;
  // The model's class names, sent with the report (EvaluationReport.class_names); empty:
  // unknown. The trainer leaves them empty; the chief's training fills them in.
  std::vector<std::string> class_names;
  double accuracy() const { return examples ? static_cast<double>(correct) / examples : 0; }
};

// What pulled weights are for.
enum class PullPurpose {
  kRead,  // evaluation, export, a tool
  // A worker's training step: the gradients it pushes next are computed from them
  // (PullRequest.training; servers running --staleness_policy=dc keep them to correct
  // those gradients with). Only a client pulling as a member of the cluster.
  kTraining,
};

// Implementations are thread-safe: several training threads may share one client.
class ParameterClient {
 public:
  virtual ~ParameterClient() = default;

  // Copies the current weights (`weights`: the trained ones, or the servers' average of
  // them) into `parameters` (the full parameter layout) and moving statistics into
  // `state` (the full state layout, or empty to skip them); returns the versions read.
  // InvalidArgument for a wrong buffer size; a server's or the transport's error
  // otherwise (FailedPrecondition for kAverage from servers keeping none; the buffers may
  // then be partly written; InvalidArgument from the servers for kTraining by a tool's
  // client or of kAverage).
  // --sync_replicas (a client made for it): server 0 is asked first, and for
  // `min_sync_step` (the step a counted push will close; 0: none): until it is there,
  // nothing is read and the result says so (ModelVersion::sync_reached); then the other
  // servers are asked with server 0's latest decision, which they apply first.
  virtual absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters, absl::Span<float> state,
                                            WeightsKind weights, PullPurpose purpose,
                                            int64_t min_sync_step) = 0;
  absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters, absl::Span<float> state,
                                    WeightsKind weights, PullPurpose purpose) {
    return Pull(parameters, state, weights, purpose, 0);
  }
  // Reading: Pull(parameters, state, weights, PullPurpose::kRead).
  absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters, absl::Span<float> state,
                                    WeightsKind weights) {
    return Pull(parameters, state, weights, PullPurpose::kRead);
  }
  // Reading the trained weights: Pull(parameters, state, WeightsKind::kRaw).
  absl::StatusOr<ModelVersion> Pull(absl::Span<float> parameters, absl::Span<float> state) {
    return Pull(parameters, state, WeightsKind::kRaw);
  }
  // A training step's weights (no moving statistics): Pull(parameters, {},
  // WeightsKind::kRaw, PullPurpose::kTraining).
  absl::StatusOr<ModelVersion> PullForTraining(absl::Span<float> parameters) {
    return Pull(parameters, {}, WeightsKind::kRaw, PullPurpose::kTraining);
  }

  // Sends each server its ranges of the request, with the progress figures of
  // set_progress. Errors: InvalidArgument for wrong sizes, a version list of the wrong
  // length or a NaN/infinite value (named by tensor and index), found before any server is
  // sent anything; otherwise the first failing server's error, prefixed with its index
  // (e.g. Aborted when too stale: pull again). A push is not atomic across servers: after
  // one server's error, the others may have applied it; resending the same request_id is
  // safe. --sync_replicas (a push computed from a pull with a sync_step): the other
  // servers first, server 0 last and only when they all accepted, so that server 0 counts
  // only gradients every server holds (parameter_server/core/sync_replicas.h).
  virtual absl::StatusOr<PushResult> Push(const PushRequest& request) = 0;

  // Every server's status, in plan order, each its own result (a tool can show the
  // servers that answer while others are down). A server holding another plan is
  // FailedPrecondition naming both sides.
  virtual std::vector<absl::StatusOr<ps::v1::StatusResponse>> GetStatus() = 0;

  // Sends the chief's evaluation of the weights at result.global_step to every server;
  // the first server's error if any refuses.
  virtual absl::Status ReportEvaluation(int32_t worker_id, const EvaluationResult& result) = 0;

  // Tells every server that `worker_id` has finished (`training_complete`: the chief
  // ends the training for everyone); the first server's error if any.
  virtual absl::Status Finish(int32_t worker_id, bool training_complete) = 0;

  // --max_workers: asks parameter server 0 for the next block of the run's data `data`,
  // reporting the blocks trained since the last call (`completed`) and those still being
  // trained (`held`); see LeaseRequest. Server 0's error otherwise; Unimplemented for a
  // client that cannot lease.
  virtual absl::StatusOr<ps::v1::LeaseResponse> LeaseData(
      int32_t worker_id, const ps::v1::DataPlan& data,
      const std::vector<ps::v1::DataBlock>& completed, const std::vector<ps::v1::DataBlock>& held) {
    (void)worker_id, (void)data, (void)completed, (void)held;
    return absl::UnimplementedError("this parameter client cannot lease data");
  }

  // The worker's own throughput and cumulative step count, sent with subsequent pushes
  // so that the servers' status shows them.
  virtual void set_progress(double images_per_sec, int64_t steps) = 0;
};

// What every client checks before it sends a push anywhere, so that no server applies its
// part of a malformed one: sizes against `parameters` and `state` (the full layouts), one
// computed-from version per server (`num_servers`), every value finite (InvalidArgument
// naming the tensor and element otherwise).
absl::Status CheckPushRequest(const PushRequest& request, const ParameterLayout& parameters,
                              const ParameterLayout& state, int num_servers);

// The protocol's requests of a client of `plan`, for server `server` (in plan order) or
// for every server; both clients send exactly these.
ps::v1::PullRequest MakePullRequest(const ShardingPlan& plan, int server, int32_t worker_id,
                                    bool include_state, WeightsKind weights, PullPurpose purpose);
// --sync_replicas: what a pull of server `server` carries besides MakePullRequest's fields:
// to server 0 the awaited step, to the others server 0's latest decision (only a member's
// pulls relay it: `worker_id` >= 0).
void AddSyncFields(int server, int32_t worker_id, int64_t min_sync_step,
                   const std::optional<ps::v1::SyncDecision>& decision,
                   ps::v1::PullRequest& request);
// Every field but the payloads; the push's progress figures are `images_per_sec` and
// `steps`.
ps::v1::PushRequest MakePushFields(const ShardingPlan& plan, int server, const PushRequest& request,
                                   double images_per_sec, int64_t steps);
ps::v1::EvaluationReport MakeEvaluationReport(const ShardingPlan& plan, int32_t worker_id,
                                              const EvaluationResult& result);
ps::v1::FinishRequest MakeFinishRequest(const ShardingPlan& plan, int32_t worker_id,
                                        bool training_complete);

ps::v1::LeaseRequest MakeLeaseRequest(const ShardingPlan& plan, int32_t worker_id,
                                      const ps::v1::DataPlan& data,
                                      const std::vector<ps::v1::DataBlock>& completed,
                                      const std::vector<ps::v1::DataBlock>& held);

// The statuses of every server, or the first error among them.
absl::StatusOr<std::vector<ps::v1::StatusResponse>> AllStatuses(ParameterClient& client);

// The smallest global step over `statuses` (0 when empty).
int64_t GlobalStep(const std::vector<ps::v1::StatusResponse>& statuses);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_PARAMETER_CLIENT_H_
