// The thin gRPC layer of a parameter server: adapts mobilenet.ps.v1.ParameterServer
// requests to one ParameterShard, checks that the caller computed the same sharding plan
// and addresses the right shard, and keeps the bookkeeping Status reports (per-worker
// activity, bytes in and out, the chief's latest evaluation, the last checkpoint,
// uptime) and whether training has finished.
#ifndef MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_
#define MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mobilenet/ps/v1/parameter_server.grpc.pb.h"
#include "parameter_server/parameter_shard.h"

namespace mobilenet {

struct ParameterServiceOptions {
  int shard_index = 0;            // this server's task index in the plan
  int num_shards = 1;             // PS tasks in the plan
  uint64_t plan_fingerprint = 0;  // ShardingPlan::fingerprint()
  std::string model;              // ModelConfigString of the plan's model
  // Training examples per epoch (the whole training set), for Status's epoch figure
  // (examples seen / this); <= 0 reports epoch 0.
  int64_t examples_per_epoch = 0;
  // Workers in the cluster (--worker_hosts). When > 0, training is over once this many
  // distinct workers have sent Finish; when 0, once every worker seen so far has (and at
  // least one has). A Finish with training_complete (the chief) ends it regardless.
  int num_workers = 0;
  // Identifies this run of the server in pulls; pushes computed from another run's
  // weights are refused. 0: a random nonzero value (tests may fix it).
  uint64_t incarnation = 0;
};

// Thread-safe. The handlers run on gRPC's threads; the shard does its own locking and the
// bookkeeping has one lock. Pull is served raw (the response is a PullResponse encoded by
// hand around a buffer the shard copies into, see wire_payload.h); every other method is
// typed.
class ParameterService final : public ps::v1::ParameterServer::WithRawCallbackMethod_Pull<
                                   ps::v1::ParameterServer::CallbackService> {
 public:
  // Serves `shard` (not owned; must outlive the service and the server it is registered
  // with). options.shard_index must be in [0, options.num_shards) (checked). Calls
  // RetainPayloadMemory (wire_payload.h) with the shard's size.
  ParameterService(ParameterShard* shard, ParameterServiceOptions options);
  ~ParameterService() override;

  // RPC handlers. Every request naming a plan is refused with FAILED_PRECONDITION when its
  // plan_fingerprint differs from this server's (the message names both fingerprints and,
  // when the caller sent them, both models and PS counts) or, for Pull and Push, when its
  // shard_index is not this server's (both named). Push payloads whose byte size is not
  // a multiple of 4 or not the shard's size are INVALID_ARGUMENT; a push whose
  // server_incarnation is set but not this run's (its weights were pulled before the
  // server restarted, possibly from a newer version than the restored one) is ABORTED,
  // telling the worker to pull again; the shard's own
  // errors (NaN/Inf values, versions from the future, example_count < 1: INVALID_ARGUMENT;
  // too stale under the reject policy: ABORTED) are passed through. A refused request
  // changes no weight.
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const ps::v1::PushRequest* request,
                                 ps::v1::PushResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const ps::v1::StatusRequest* request,
                                      ps::v1::StatusResponse* response) override;
  grpc::ServerUnaryReactor* ReportEvaluation(grpc::CallbackServerContext* context,
                                             const ps::v1::EvaluationReport* request,
                                             ps::v1::EvaluationAck* response) override;
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                   const ps::v1::FinishRequest* request,
                                   ps::v1::FinishResponse* response) override;

  // This run's PullResponse.server_incarnation (nonzero).
  uint64_t incarnation() const { return incarnation_; }

  // What GetStatus answers, for the PS process itself (logging).
  ps::v1::StatusResponse Status() const;

  // Records the latest checkpoint written of this shard, shown by Status.
  void SetLastCheckpoint(absl::Time time, int64_t step, std::string path);

  // Blocks until training is over (see ParameterServiceOptions::num_workers) or
  // RequestFinish is called. Status then reports finishing = true; the RPCs keep being
  // served until the caller shuts the server down.
  void WaitForFinish();
  // As WaitForFinish, but gives up after `timeout`; true when finished.
  bool WaitForFinishWithTimeout(absl::Duration timeout);
  // Marks training as over (e.g. on SIGTERM, from a thread that is not a signal handler)
  // and wakes WaitForFinish.
  void RequestFinish();
  bool finishing() const;

 private:
  struct WorkerRecord {
    absl::Time last_seen;
    absl::Time last_push = absl::InfinitePast();  // last applied push
    int64_t steps = 0;
    double images_per_sec = 0;
    int64_t pushes = 0;
    bool finished = false;
  };

  // FAILED_PRECONDITION unless the caller's plan is this server's (shard_index < 0: not
  // checked).
  absl::Status CheckPlan(uint64_t fingerprint, absl::string_view model, int32_t num_shards,
                         int32_t shard_index, absl::string_view rpc) const;
  // A serialized PullResponse in `response`.
  absl::Status DoPull(const grpc::ByteBuffer& request, grpc::ByteBuffer& response);
  absl::Status DoPush(const ps::v1::PushRequest& request, ps::v1::PushResponse& response);
  // Marks `worker_id` (>= 0) as seen now.
  WorkerRecord& TouchWorker(int32_t worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AllWorkersFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Push request/response objects and Pull response buffers reused across calls, so the
  // payload buffers keep their capacity instead of being allocated (and page-faulted in)
  // per call.
  class ReusedMessages;

  ParameterShard* const shard_;
  const ParameterServiceOptions options_;
  std::unique_ptr<ReusedMessages> reused_messages_;
  const absl::Time start_time_;
  const uint64_t incarnation_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<int32_t, WorkerRecord> workers_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_in_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t bytes_out_ ABSL_GUARDED_BY(mu_) = 0;
  // Pushes refused here before reaching the shard (plan, shard index, payload size).
  int64_t pushes_refused_ ABSL_GUARDED_BY(mu_) = 0;
  // Pushes computed from weights another run of this server served.
  int64_t pushes_restarted_ ABSL_GUARDED_BY(mu_) = 0;
  bool has_evaluation_ ABSL_GUARDED_BY(mu_) = false;
  ps::v1::EvaluationReport evaluation_ ABSL_GUARDED_BY(mu_);
  absl::Time evaluation_time_ ABSL_GUARDED_BY(mu_);
  absl::Time checkpoint_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t checkpoint_step_ ABSL_GUARDED_BY(mu_) = 0;
  std::string checkpoint_path_ ABSL_GUARDED_BY(mu_);
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
};

// A started gRPC server and the port it listens on.
struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// Builds and starts a server listening on `address` exactly as given ("127.0.0.1:2222",
// "[::1]:0", "0.0.0.0:2222" only if asked), without TLS, serving `services` (not owned;
// they must outlive the server) plus the standard health service (reporting SERVING) and
// server reflection, with the message limits raised to kMaxGrpcMessageBytes and the
// large-message settings of common/grpc_status.h; a port already taken by another server
// is an error (no SO_REUSEPORT sharing). Port 0 picks a free port, returned in `port`.
// Unavailable naming the address when it cannot be bound; InvalidArgument for an address
// without a port.
absl::StatusOr<StartedServer> StartGrpcServer(absl::string_view address,
                                              const std::vector<grpc::Service*>& services);

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_PARAMETER_SERVICE_H_
