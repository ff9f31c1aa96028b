// The whole cluster as `mobilenet-ctl status` shows it, assembled from every parameter
// server's Status response: a readable table for people and the same figures as JSON for
// machines. Pure formatting: the caller does the RPCs (worker/grpc_parameter_client.h's
// QueryParameterServerStatus) and passes the clock.
#ifndef MOBILENET_WORKER_CLUSTER_STATUS_H_
#define MOBILENET_WORKER_CLUSTER_STATUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mobilenet/ps/v1/parameter_server.pb.h"

namespace mobilenet {

// What one parameter server answered (or why it did not).
struct ParameterServerReport {
  std::string address;
  absl::StatusOr<ps::v1::StatusResponse> status;
};

// One worker as the servers together saw it.
struct ClusterWorker {
  int32_t worker_id = 0;
  double seconds_since_seen = 0;  // the freshest over servers; -1: none has seen it
  int64_t steps = 0;
  double images_per_sec = 0;      // as the worker last reported it
  int64_t pushes = 0;             // the most any server counted
  int64_t examples = 0;           // in its applied pushes, the most any server counted
  bool finished = false;          // a server recorded its Finish
};

// The cluster-wide figures derived from the servers that answered.
struct ClusterSummary {
  int servers = 0;                // reports given
  int servers_answering = 0;
  int64_t global_step = 0;        // the smallest server version (applied everywhere)
  int64_t examples_seen = 0;      // the smallest over servers
  double epoch = 0;               // the smallest over servers
  double learning_rate = 0;       // of the first answering server
  int64_t parameter_bytes = 0;    // summed
  int64_t state_bytes = 0;
  bool plans_agree = true;        // every answering server has the same fingerprint
  bool finishing = false;         // a server reports training has ended
  bool training_complete = false; // a server's ledger says the chief ended the training
  // The latest evaluation any server holds (by eval time); eval_examples == 0 when none.
  double eval_accuracy = 0;
  double eval_loss = 0;
  int64_t eval_step = 0;
  int64_t eval_examples = 0;
  double eval_unix_seconds = 0;
  // That evaluation's figures for the weight average; eval_average_examples == 0: none.
  double eval_average_accuracy = 0;
  double eval_average_loss = 0;
  int64_t eval_average_examples = 0;
  float weight_ema_decay = 0;     // of the first answering server; 0: it keeps no average
  std::string model;              // of the first answering server
  std::vector<ClusterWorker> workers;  // by worker id
};

ClusterSummary SummarizeCluster(const std::vector<ParameterServerReport>& reports);

// A table per parameter server and per worker, with a summary header. Times ("12s ago")
// are relative to `now`. Ends with a newline.
std::string FormatClusterStatusText(const std::vector<ParameterServerReport>& reports,
                                    absl::Time now);

// The same as one JSON object on one line (no trailing newline):
// {"time": unix seconds, "summary": {...}, "parameter_servers": [{"address", "ok",
// "error" | the figures...}], "workers": [...]}. Counts are JSON numbers; the plan
// fingerprint is a 16-digit hex string; a figure that is not finite is null.
std::string FormatClusterStatusJson(const std::vector<ParameterServerReport>& reports,
                                    absl::Time now);

// Server 0's data leases on one line: "data: epoch 3 of 10, 143/600 blocks trained, 2
// leased (worker 0: e3 b17 4s, ...), 0 returned, 3 reassigned".
std::string FormatDataLeases(const ps::v1::DataLeaseStatus& leases);
// "worker 2 left 12:04:10 (2 data blocks returned)", the time of day in `zone`.
std::string FormatMembershipEvent(const ps::v1::MembershipEvent& event, absl::TimeZone zone);

// "1.5 KB", "17.2 MB", "3.1 GB" (powers of 1024).
std::string FormatBytes(int64_t bytes);

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_CLUSTER_STATUS_H_
