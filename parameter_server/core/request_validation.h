// The one place where a request to a parameter server becomes trusted: a function per
// request type, called before the request touches any state, returning every problem it
// finds. What comes after may assume what it checked.
//
// Order of the checks, and the code each gives:
//   0. the caller's rights (caller.h): PERMISSION_DENIED naming the caller and what it
//      may not do, before anything else, so that a caller learns nothing about requests
//      it may not make: a worker pushes, pulls and finishes only as itself, only the
//      chief reports evaluations, a monitor only reads, a parameter server only reads
//      status;
//   1. the plan: the caller's sharding-plan fingerprint (and, for Pull and Push, the
//      shard it addresses) must be this server's: FAILED_PRECONDITION, naming both sides;
//      nothing else is looked at under another plan; Pull only: the weight average asked
//      of a server that keeps none: FAILED_PRECONDITION naming --weight_ema_decay;
//   2. the fields: worker ids that are members of the cluster, payload formats that are
//      PayloadDtype values, payload sizes that are exactly the plan's in the payload's
//      format, counts, versions and figures in range, the chief's rights:
//      INVALID_ARGUMENT listing every field in error ("push: worker_id: ...; ...");
//   1b. Push only: the mode: a push without sync_step to a --sync_replicas server, or
//      with one to an asynchronous server: FAILED_PRECONDITION naming the flag;
//   3. Push only: a server_incarnation of another run of this server: ABORTED (the
//      weights were pulled before a restart; pull again);
//   4. Push only: the payload values, decoded to float32 first (finite; variances not
//      negative), through ShardUpdate::Check: INVALID_ARGUMENT naming the tensor and
//      element.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_REQUEST_VALIDATION_H_
#define MOBILENET_PARAMETER_SERVER_CORE_REQUEST_VALIDATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"
#include "parameter_server/core/caller.h"
#include "parameter_server/core/parameter_shard.h"

namespace mobilenet {

// What a request is validated against: this server's place in the plan and the cluster.
struct ServerIdentity {
  int shard_index = 0;
  int num_shards = 1;
  uint64_t plan_fingerprint = 0;
  std::string model;      // ModelConfigString of the plan's model, for messages
  int num_workers = 1;    // members are worker ids [0, num_workers); 0 is the chief
  uint64_t incarnation = 0;  // this run's PullResponse.server_incarnation (nonzero)
  bool keeps_weight_average = false;  // the shard's weight_ema_decay > 0
  int num_classes = -1;  // the model's, for class names; -1: unknown (a plan of bare layouts)
  bool sync_replicas = false;  // --sync_replicas (sync_replicas.h)
  int max_workers = 0;         // --max_workers (elastic workers; then num_workers too); 0: off
};

// Tools (mobilenet-ctl) pull with this worker id.
inline constexpr int32_t kToolWorkerId = -1;

// A Pull by a member (worker_id in [0, num_workers)) or a tool (kToolWorkerId); a
// training pull only by a member, of the weights (not their average); in a known
// PayloadDtype. --sync_replicas: min_sync_step >= 0, and > 0 only to server 0 of a
// synchronous cluster; a sync_decision only from a member, only to another server of a
// synchronous cluster, with a step >= 0 and 1 to num_workers distinct members, each
// with an example count in [1, kMaxExamplesPerPush].
absl::Status ValidatePullRequest(const Caller& caller, const ps::v1::PullRequest& request,
                                 const ServerIdentity& server);

// A push that passed ValidatePushRequest, its payloads as float32. It refers to the
// request's payload bytes (or, when they are in a 16-bit format or not float-aligned, to
// its own decoded copy), so it must not outlive the request. Move-only.
struct ValidatedPush {
  int32_t worker_id = 0;
  uint64_t request_id = 0;
  int64_t reported_steps = 0;     // >= 0
  double images_per_sec = 0.0;    // finite, >= 0
  int64_t sync_step = -1;         // --sync_replicas: >= 0; -1 otherwise
  bool last_of_share = false;
  ShardUpdate update;
  std::vector<float> decoded;  // the payloads, when the request's bytes are not float32 views

  ValidatedPush(ShardUpdate checked) : update(std::move(checked)) {}
  ValidatedPush(ValidatedPush&&) = default;
  ValidatedPush& operator=(ValidatedPush&&) = default;
};

// A Push from a member, against `shard` (sizes, value checks). See the file comment.
absl::StatusOr<ValidatedPush> ValidatePushRequest(const Caller& caller,
                                                  const ps::v1::PushRequest& request,
                                                  const ServerIdentity& server,
                                                  const ParameterShard& shard);

// A ReportEvaluation: only the chief reports, with 0 <= correct <= examples, a finite
// loss >= 0 and a global step >= 0, and the same bounds for the weight average's figures
// (all 0 when it was not evaluated); class names (if any) that CheckClassNames accepts for
// the server's num_classes. Whether they match names the server already keeps is its
// ledger's check (ClusterLedger::RecordClassNames), made before anything is recorded.
absl::Status ValidateEvaluationReport(const Caller& caller, const ps::v1::EvaluationReport& request,
                                      const ServerIdentity& server);

// A Finish by a member; training_complete only from the chief.
absl::Status ValidateFinishRequest(const Caller& caller, const ps::v1::FinishRequest& request,
                                   const ServerIdentity& server);

// The most blocks a LeaseRequest may list as completed, and as held.
inline constexpr int kMaxLeaseBlocksListed = 16;

// A LeaseData by a member as itself (tools cannot lease), to server 0 of a cluster with
// --max_workers (FAILED_PRECONDITION naming both otherwise), under this server's plan;
// a DataPlan in range (num_examples >= 1, blocks_per_epoch in [1, num_examples],
// epochs >= 1, at most kMaxDataBlocks blocks); completed and held each at most
// kMaxLeaseBlocksListed blocks with epoch and block >= 0, without duplicates and none in
// both. Whether the blocks lie inside the run's plan is DataLeases::Lease's check.
absl::Status ValidateLeaseRequest(const Caller& caller, const ps::v1::LeaseRequest& request,
                                  const ServerIdentity& server);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_REQUEST_VALIDATION_H_
