#include "common/cluster_spec.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "mobilenet/ps/v1/cluster.pb.h"

namespace mobilenet {
namespace {

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

bool IsIpv6Char(char c) {
  return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

absl::Status BadAddress(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not host:port: ", why));
}

// Parses one source's host list entries, naming the source and the entry on error.
absl::StatusOr<std::vector<HostPort>> ParseHostList(const std::vector<std::string>& entries,
                                                    const std::string& source) {
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, " is empty; expected host:port,..."));
  }
  std::vector<HostPort> hosts;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto parsed = ParseHostPort(entries[i]);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, " entry ", i, ": ", parsed.status().message()));
    }
    hosts.push_back(*std::move(parsed));
  }
  return hosts;
}

}  // namespace

const char* JobNameText(JobName job) {
  return job == JobName::kParameterServer ? "ps" : "worker";
}

absl::StatusOr<JobName> ParseJobName(absl::string_view text) {
  if (text == "ps") return JobName::kParameterServer;
  if (text == "worker") return JobName::kWorker;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown job name \"", text, "\"; expected \"ps\" or \"worker\""));
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text) {
  HostPort result;
  absl::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return BadAddress(text, "unclosed '['");
    const absl::string_view host = text.substr(1, close - 1);
    if (host.empty()) return BadAddress(text, "empty host");
    for (char c : host) {
      if (!IsIpv6Char(c)) return BadAddress(text, "malformed IPv6 literal");
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return BadAddress(text, "expected ':<port>' after ']'");
    }
    result.host = std::string(host);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return BadAddress(text, "no ':<port>'");
    const absl::string_view host = text.substr(0, colon);
    if (host.empty()) return BadAddress(text, "empty host");
    for (char c : host) {
      if (!IsHostNameChar(c)) {
        return BadAddress(text, absl::StrCat("character '", std::string(1, c),
                                             "' in host (IPv6 literals go in brackets)"));
      }
    }
    result.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty()) return BadAddress(text, "empty port");
  for (char c : port_text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return BadAddress(text, absl::StrCat("port \"", port_text, "\" is not a number"));
    }
  }
  int64_t port = 0;
  if (port_text.size() > 6 || !absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535) {
    return BadAddress(text, absl::StrCat("port ", port_text, " is out of range [1, 65535]"));
  }
  result.port = static_cast<int>(port);
  return result;
}

ClusterDescription ClusterDescriptionFromFlags(absl::string_view ps_hosts,
                                               absl::string_view worker_hosts,
                                               absl::string_view job_name, int task_index) {
  ClusterDescription d;
  auto split = [](absl::string_view list) {
    std::vector<std::string> entries;
    for (absl::string_view e : absl::StrSplit(list, ',')) {
      entries.emplace_back(absl::StripAsciiWhitespace(e));
    }
    return entries;
  };
  if (!ps_hosts.empty()) d.ps_hosts = split(ps_hosts);
  if (!worker_hosts.empty()) d.worker_hosts = split(worker_hosts);
  if (!job_name.empty()) d.job_name = std::string(job_name);
  if (task_index >= 0) d.task_index = task_index;
  return d;
}

absl::StatusOr<ClusterDescription> ParseClusterJson(absl::string_view json) {
  mobilenet::ps::v1::ClusterConfig config;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kClusterEnvVariable, ": not a cluster description (", status.message().ToString(),
        "); expected {\"cluster\": {\"ps\": [\"host:port\", ...], \"worker\": [...]}, "
        "\"task\": {\"type\": \"ps\"|\"worker\", \"index\": N}}"));
  }
  ClusterDescription d;
  const std::string var = kClusterEnvVariable;
  if (config.cluster().ps_size() > 0) {
    d.ps_hosts.emplace(config.cluster().ps().begin(), config.cluster().ps().end());
  }
  if (config.cluster().worker_size() > 0) {
    d.worker_hosts.emplace(config.cluster().worker().begin(), config.cluster().worker().end());
  }
  if (config.task().has_type()) d.job_name = config.task().type();
  if (config.task().has_index()) {
    if (config.task().index() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          var, " task.index is ", config.task().index(), "; expected >= 0"));
    }
    d.task_index = config.task().index();
  }
  d.ps_hosts_source = var + " cluster.ps";
  d.worker_hosts_source = var + " cluster.worker";
  d.job_name_source = var + " task.type";
  d.task_index_source = var + " task.index";
  return d;
}

std::vector<std::string> ClusterSpec::PsTargets() const {
  std::vector<std::string> targets;
  for (const HostPort& h : ps_hosts) targets.push_back(h.ToString());
  return targets;
}

std::string ClusterSpec::Describe() const {
  auto join = [](const std::vector<HostPort>& hosts) {
    return absl::StrJoin(hosts, ",", [](std::string* out, const HostPort& h) {
      out->append(h.ToString());
    });
  };
  const int size = job == JobName::kParameterServer ? num_ps() : num_workers();
  return absl::StrCat(JobNameText(job), " ", task_index, " of ", size, " (ps: ", join(ps_hosts),
                      "; workers: ", join(worker_hosts), ")");
}

absl::StatusOr<ClusterSpec> ValidateClusterDescription(const ClusterDescription& d,
                                                       int max_workers) {
  ClusterSpec spec;
  if (!d.ps_hosts) {
    return absl::InvalidArgumentError(
        absl::StrCat("no parameter servers: give --ps_hosts=host:port,... or ",
                     kClusterEnvVariable, " cluster.ps"));
  }
  if (!d.worker_hosts) {
    return absl::InvalidArgumentError(
        absl::StrCat("no workers: give --worker_hosts=host:port,... or ", kClusterEnvVariable,
                     " cluster.worker"));
  }
  ASSIGN_OR_RETURN(spec.ps_hosts, ParseHostList(*d.ps_hosts, d.ps_hosts_source));
  ASSIGN_OR_RETURN(spec.worker_hosts, ParseHostList(*d.worker_hosts, d.worker_hosts_source));

  // Every address names one task.
  std::map<std::string, std::string> seen;  // address -> "<source> entry <i>"
  auto check_unique = [&](const std::vector<HostPort>& hosts,
                          const std::string& source) -> absl::Status {
    for (size_t i = 0; i < hosts.size(); ++i) {
      const std::string where = absl::StrCat(source, " entry ", i);
      auto [it, inserted] = seen.emplace(hosts[i].ToString(), where);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, " \"", hosts[i].ToString(), "\" duplicates ", it->second,
            "; every task needs its own address"));
      }
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check_unique(spec.ps_hosts, d.ps_hosts_source));
  RETURN_IF_ERROR(check_unique(spec.worker_hosts, d.worker_hosts_source));

  if (!d.job_name) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no job name: give --job_name=ps|worker or ", kClusterEnvVariable, " task.type"));
  }
  auto job = ParseJobName(*d.job_name);
  if (!job.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(d.job_name_source, ": ", job.status().message()));
  }
  spec.job = *job;
  spec.task_index = d.task_index.value_or(0);
  const int size = spec.job == JobName::kParameterServer
                       ? spec.num_ps()
                       : std::max(spec.num_workers(), max_workers);
  if (spec.task_index < 0 || spec.task_index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat(d.task_index_source, " is ", spec.task_index, ", out of range: job \"",
                     JobNameText(spec.job), "\" has ", size, " task(s), indices 0..", size - 1,
                     spec.job == JobName::kWorker && max_workers == 0
                         ? " (--max_workers lets workers join beyond --worker_hosts)"
                         : ""));
  }
  return spec;
}

absl::StatusOr<std::optional<ClusterSpec>> ResolveClusterSpec(const ClusterDescription& flags,
                                                              const char* env_json,
                                                              int max_workers) {
  ClusterDescription merged;
  if (env_json != nullptr && !absl::StripAsciiWhitespace(env_json).empty()) {
    ASSIGN_OR_RETURN(merged, ParseClusterJson(env_json));
  }
  if (flags.ps_hosts) {
    merged.ps_hosts = flags.ps_hosts;
    merged.ps_hosts_source = flags.ps_hosts_source;
  }
  if (flags.worker_hosts) {
    merged.worker_hosts = flags.worker_hosts;
    merged.worker_hosts_source = flags.worker_hosts_source;
  }
  if (flags.job_name) {
    merged.job_name = flags.job_name;
    merged.job_name_source = flags.job_name_source;
  }
  if (flags.task_index) {
    merged.task_index = flags.task_index;
    merged.task_index_source = flags.task_index_source;
  }
  if (merged.empty()) return std::optional<ClusterSpec>();
  ASSIGN_OR_RETURN(ClusterSpec spec, ValidateClusterDescription(merged, max_workers));
  return std::optional<ClusterSpec>(std::move(spec));
}

absl::StatusOr<std::string> ParameterServerBindAddress(const ClusterSpec& spec,
                                                       absl::string_view bind_flag) {
  if (spec.job != JobName::kParameterServer) {
    return absl::FailedPreconditionError(
        absl::StrCat("only a parameter server binds; this task is ", spec.Describe()));
  }
  if (bind_flag.empty()) return spec.own_address().ToString();
  auto parsed = ParseHostPort(bind_flag);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--bind_address: ", parsed.status().message()));
  }
  return parsed->ToString();
}

}  // namespace mobilenet
