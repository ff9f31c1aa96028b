// Who is in the cluster and which task this process is, spelled like TensorFlow 1's
// cluster flags (--ps_hosts=h1:p1,h2:p2 --worker_hosts=h3:p3,h4:p4 --job_name=ps|worker
// --task_index=N) or given as JSON in the MOBILENET_CLUSTER environment variable, shaped
// like TF_CONFIG:
//   {"cluster": {"ps": ["h1:p1", "h2:p2"], "worker": ["h3:p3", "h4:p4"]},
//    "task": {"type": "worker", "index": 1}}
// Flags win over the variable field by field: a container can carry the cluster in the
// variable and get its own --job_name/--task_index on the command line.
#ifndef MOBILENET_COMMON_CLUSTER_SPEC_H_
#define MOBILENET_COMMON_CLUSTER_SPEC_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mobilenet {

inline constexpr char kClusterEnvVariable[] = "MOBILENET_CLUSTER";

enum class JobName {
  kParameterServer,  // "ps"
  kWorker,           // "worker"
};

// "ps" or "worker".
const char* JobNameText(JobName job);
// Parses JobNameText's spellings; otherwise InvalidArgument naming the text and both.
absl::StatusOr<JobName> ParseJobName(absl::string_view text);

// A network address "host:port". IPv6 literals are written in brackets ("[::1]:2222").
struct HostPort {
  std::string host;  // a name, an IPv4 literal or an IPv6 literal (without brackets)
  int port = 0;      // in [1, 65535]

  // "host:port", or "[host]:port" for IPv6; what gRPC takes as a target or bind address.
  std::string ToString() const;
};

// InvalidArgument naming `text` when it is not "host:port" with a non-empty host of
// letters, digits, '.', '-' and '_' (or a bracketed IPv6 literal) and a decimal port in
// [1, 65535].
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text);

// Part of a cluster description as one source gives it; unset fields were not given.
struct ClusterDescription {
  std::optional<std::vector<std::string>> ps_hosts;
  std::optional<std::vector<std::string>> worker_hosts;
  std::optional<std::string> job_name;
  std::optional<int> task_index;
  // How messages name where each field came from.
  std::string ps_hosts_source = "--ps_hosts";
  std::string worker_hosts_source = "--worker_hosts";
  std::string job_name_source = "--job_name";
  std::string task_index_source = "--task_index";

  bool empty() const {
    return !ps_hosts && !worker_hosts && !job_name && !task_index;
  }
};

// The command-line flags as a description: an empty string or a negative task index
// means "not given". Host lists are split at commas (entries are checked later).
ClusterDescription ClusterDescriptionFromFlags(absl::string_view ps_hosts,
                                               absl::string_view worker_hosts,
                                               absl::string_view job_name, int task_index);

// Parses MOBILENET_CLUSTER's JSON (see the file comment). InvalidArgument naming the
// variable and the parser's complaint (e.g. an unknown key, a wrong type).
absl::StatusOr<ClusterDescription> ParseClusterJson(absl::string_view json);

// A validated cluster and this process's place in it.
struct ClusterSpec {
  std::vector<HostPort> ps_hosts;      // parameter servers, task 0 first
  std::vector<HostPort> worker_hosts;  // workers; worker 0 is the chief
  JobName job = JobName::kWorker;
  int task_index = 0;

  int num_ps() const { return static_cast<int>(ps_hosts.size()); }
  int num_workers() const { return static_cast<int>(worker_hosts.size()); }
  bool is_chief() const { return job == JobName::kWorker && task_index == 0; }
  // This task's own entry of its job's list.
  const HostPort& own_address() const {
    return job == JobName::kParameterServer ? ps_hosts[task_index] : worker_hosts[task_index];
  }
  // Every parameter server's "host:port", task order (gRPC targets).
  std::vector<std::string> PsTargets() const;
  // "worker 1 of 2 (ps: a:1,b:2; workers: c:3,d:4)".
  std::string Describe() const;
};

// Validates a complete description. InvalidArgument naming the source and the entry for:
// a missing or empty host list, a malformed host:port or a port outside [1, 65535], an
// address listed twice (in either job), a missing or unknown job name, a task index out
// of its job's range (a worker's range is [0, max(worker_hosts, max_workers)): elastic
// workers, see --max_workers). A missing task index means 0.
absl::StatusOr<ClusterSpec> ValidateClusterDescription(const ClusterDescription& description,
                                                       int max_workers = 0);

// The cluster of a process: `flags` (from ClusterDescriptionFromFlags) over the JSON of
// MOBILENET_CLUSTER (`env_json`, null or empty when the variable is unset). Returns
// nullopt when neither gives anything (not a cluster process); otherwise the validated
// merge, or the first problem (InvalidArgument, naming the flag or the variable's key).
absl::StatusOr<std::optional<ClusterSpec>> ResolveClusterSpec(const ClusterDescription& flags,
                                                              const char* env_json,
                                                              int max_workers = 0);

// Where a parameter server listens: `bind_flag` when non-empty (validated; "0.0.0.0:p"
// or "[::]:p" bind every interface, only when asked for this way), otherwise its own
// entry of ps_hosts. FailedPrecondition if `spec` is not a parameter server's.
absl::StatusOr<std::string> ParameterServerBindAddress(const ClusterSpec& spec,
                                                       absl::string_view bind_flag);

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_CLUSTER_SPEC_H_
