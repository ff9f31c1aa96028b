#include "worker/cluster_status.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json_text.h"
#include "worker/progress_reporter.h"

namespace mobilenet {
namespace {

double UnixSeconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

// "12s ago" for a unix time, "-" for 0 (never).
std::string Ago(double unix_seconds, absl::Time now) {
  if (unix_seconds <= 0) return "-";
  return absl::StrCat(FormatDuration(std::max(0.0, UnixSeconds(now) - unix_seconds)), " ago");
}

// Left-aligned columns separated by two spaces. A row shorter than the header (e.g. an
// address and an error) has its last cell run on without widening the columns.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string Render() const {
    std::vector<size_t> width(header_.size(), 0);
    auto widen = [&](const std::vector<std::string>& row) {
      for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
        width[i] = std::max(width[i], row[i].size());
      }
    };
    widen(header_);
    for (const auto& row : rows_) {
      if (row.size() == header_.size()) widen(row);
    }
    std::string out;
    auto render = [&](const std::vector<std::string>& row) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - std::min(width[i], row[i].size()) + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    };
    render(header_);
    for (const auto& row : rows_) render(row);
    return out;
  }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// JSON text helpers.
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.10g", v);
}

std::string JsonBool(bool b) { return b ? "true" : "false"; }

// {"k": v, ...} from already-encoded values, in the given order.
std::string JsonObject(const std::vector<std::pair<std::string, std::string>>& fields) {
  return absl::StrCat("{", absl::StrJoin(fields, ", ", [](std::string* out, const auto& f) {
                        absl::StrAppend(out, JsonString(f.first), ": ", f.second);
                      }),
                      "}");
}

std::string JsonArray(const std::vector<std::string>& items) {
  return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
}

std::string Fingerprint(uint64_t fingerprint) { return absl::StrFormat("%016x", fingerprint); }

std::string Percent(double fraction) { return absl::StrFormat("%.2f%%", 100 * fraction); }

const char* EventVerb(ps::v1::MembershipEvent::Kind kind) {
  switch (kind) {
    case ps::v1::MembershipEvent::JOINED:
      return "joined";
    case ps::v1::MembershipEvent::LEFT:
      return "left";
    case ps::v1::MembershipEvent::FINISHED:
      return "finished";
    default:
      return "changed";
  }
}

// Membership events shown in the text: the latest of server 0's.
constexpr int kEventsShown = 5;

}  // namespace

std::string FormatDataLeases(const ps::v1::DataLeaseStatus& leases) {
  if (!leases.has_data()) return "data: no worker has asked for data yet";
  std::vector<std::string> held;
  for (const ps::v1::DataLeaseStatus::Held& h : leases.held()) {
    held.push_back(absl::StrFormat("worker %d: e%d b%d %s", h.worker_id(), h.block().epoch(),
                                   h.block().block(), FormatDuration(h.seconds_held())));
  }
  // The epoch in training counted from 1 (the blocks' labels count from 0, as leased).
  return absl::StrFormat(
      "data: epoch %d of %d, %d/%d blocks trained, %d leased%s, %d returned, %d reassigned%s",
      std::min(leases.epoch() + 1, leases.data().epochs()), leases.data().epochs(), leases.blocks_completed(), leases.blocks_total(),
      leases.held_size(), held.empty() ? "" : absl::StrCat(" (", absl::StrJoin(held, ", "), ")"),
      leases.blocks_returned(), leases.blocks_reassigned(),
      leases.late_completions() > 0
          ? absl::StrFormat(", %d completed late", leases.late_completions())
          : "");
}

std::string FormatMembershipEvent(const ps::v1::MembershipEvent& event, absl::TimeZone zone) {
  const absl::Time when = absl::UnixEpoch() + absl::Seconds(event.unix_seconds());
  return absl::StrFormat("worker %d %s %s%s", event.worker_id(), EventVerb(event.kind()),
                         absl::FormatTime("%H:%M:%S", when, zone),
                         event.detail().empty() ? "" : absl::StrCat(" (", event.detail(), ")"));
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (b < 1024.0 * 1024) return absl::StrFormat("%.1f KB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f MB", b / (1024.0 * 1024));
  return absl::StrFormat("%.1f GB", b / (1024.0 * 1024 * 1024));
}

ClusterSummary SummarizeCluster(const std::vector<ParameterServerReport>& reports) {
  ClusterSummary s;
  s.servers = static_cast<int>(reports.size());
  std::map<int32_t, ClusterWorker> workers;
  bool first = true;
  uint64_t fingerprint = 0;
  for (const ParameterServerReport& report : reports) {
    if (!report.status.ok()) continue;
    const ps::v1::StatusResponse& r = *report.status;
    ++s.servers_answering;
    if (first) {
      s.global_step = r.global_step();
      s.examples_seen = r.examples_seen();
      s.epoch = r.epoch();
      s.learning_rate = r.learning_rate();
      s.weight_ema_decay = r.weight_ema_decay();
      s.model = r.model();
      fingerprint = r.plan_fingerprint();
      first = false;
    } else {
      s.global_step = std::min(s.global_step, r.global_step());
      s.examples_seen = std::min(s.examples_seen, r.examples_seen());
      s.epoch = std::min(s.epoch, r.epoch());
      if (r.plan_fingerprint() != fingerprint) s.plans_agree = false;
    }
    s.parameter_bytes += r.parameter_bytes();
    s.state_bytes += r.state_bytes();
    s.finishing = s.finishing || r.finishing();
    s.training_complete = s.training_complete || r.training_complete();
    if (r.eval_examples() > 0 && r.eval_unix_seconds() >= s.eval_unix_seconds) {
      s.eval_accuracy = r.eval_accuracy();
      s.eval_loss = r.eval_loss();
      s.eval_step = r.eval_step();
      s.eval_examples = r.eval_examples();
      s.eval_unix_seconds = r.eval_unix_seconds();
      s.eval_average_accuracy = r.eval_average_accuracy();
      s.eval_average_loss = r.eval_average_loss();
      s.eval_average_examples = r.eval_average_examples();
    }
    for (const ps::v1::WorkerStatus& w : r.workers()) {
      auto [it, inserted] = workers.try_emplace(w.worker_id());
      ClusterWorker& cw = it->second;
      // The freshest sighting wins; -1 (not seen since that server started) never does.
      const double seen = w.seconds_since_last_seen();
      if (inserted || (seen >= 0 && (cw.seconds_since_seen < 0 || seen < cw.seconds_since_seen))) {
        cw.seconds_since_seen = seen;
        cw.images_per_sec = w.images_per_sec();
      }
      cw.worker_id = w.worker_id();
      cw.steps = std::max(cw.steps, w.steps());
      cw.pushes = std::max(cw.pushes, w.pushes());
      cw.examples = std::max(cw.examples, w.examples());
      cw.finished = cw.finished || w.finished();
    }
  }
  for (auto& [id, w] : workers) s.workers.push_back(w);
  return s;
}

std::string FormatClusterStatusText(const std::vector<ParameterServerReport>& reports,
                                    absl::Time now) {
  const ClusterSummary s = SummarizeCluster(reports);
  std::string out = absl::StrFormat("Cluster: %d of %d parameter servers answering", s.servers_answering,
                                    s.servers);
  if (!s.model.empty()) absl::StrAppend(&out, "; model ", s.model);
  out += "\n";
  if (s.servers_answering > 0) {
    absl::StrAppendFormat(&out,
                          "Global step %d  examples %d  epoch %.2f  learning rate %.4g  "
                          "weights %s + statistics %s\n",
                          s.global_step, s.examples_seen, s.epoch, s.learning_rate,
                          FormatBytes(s.parameter_bytes), FormatBytes(s.state_bytes));
    if (s.eval_examples > 0) {
      absl::StrAppendFormat(&out,
                            "Latest evaluation: accuracy %s (loss %.4f, %d examples) at step "
                            "%d, %s\n",
                            Percent(s.eval_accuracy), s.eval_loss, s.eval_examples, s.eval_step,
                            Ago(s.eval_unix_seconds, now));
      if (s.eval_average_examples > 0) {
        absl::StrAppendFormat(&out, "  weight average (decay %g): accuracy %s (loss %.4f)\n",
                              s.weight_ema_decay, Percent(s.eval_average_accuracy),
                              s.eval_average_loss);
      }
    } else {
      out += "Latest evaluation: none yet\n";
    }
  }
  if (!s.plans_agree) {
    out += "WARNING: the servers report different sharding plans (model flags or --ps_hosts "
           "differ between them)\n";
  }
  for (const ParameterServerReport& report : reports) {
    // Server 0 decides the synchronous steps.
    if (!report.status.ok() || !report.status->sync_replicas() ||
        report.status->shard_index() != 0) {
      continue;
    }
    const ps::v1::StatusResponse& r = *report.status;
    absl::StrAppendFormat(
        &out,
        "Synchronous training: step %d, %d of %d gradients counted (%s), %d dropped as late, "
        "%d live workers\n",
        r.sync_steps(), r.sync_gradients_pending(), r.sync_gradients_needed(),
        r.replicas_to_aggregate() == 0 ? std::string("N = every live worker")
                                       : absl::StrCat("N = ", r.replicas_to_aggregate()),
        r.sync_pushes_dropped(), r.live_workers());
    if (!r.sync_waiting().empty()) absl::StrAppend(&out, "  WAITING: ", r.sync_waiting(), "\n");
  }
  for (const ParameterServerReport& report : reports) {
    // Server 0 leases the data and sees every member.
    if (!report.status.ok() || report.status->max_workers() <= 0 ||
        report.status->shard_index() != 0) {
      continue;
    }
    const ps::v1::StatusResponse& r = *report.status;
    absl::StrAppendFormat(&out, "Elastic workers: up to %d, %d live\n  %s\n", r.max_workers(),
                          r.live_workers(), FormatDataLeases(r.data_leases()));
    const int events = r.membership_events_size();
    for (int i = std::max(0, events - kEventsShown); i < events; ++i) {
      absl::StrAppend(&out, "  ",
                      FormatMembershipEvent(r.membership_events(i), absl::LocalTimeZone()), "\n");
    }
  }
  if (s.finishing) {
    out += "Training has ended; the servers are shutting down.\n";
  } else if (s.training_complete) {
    out += "Training is complete (the chief ended it); the servers serve the trained weights.\n";
  }

  Table servers({"PS", "ADDRESS", "SLICES", "BYTES", "STEP", "EXAMPLES", "EPOCH", "LR",
                 "CHECKPOINT", "UPTIME", "EVAL"});
  Table security({"PS", "TRANSPORT SECURITY", "DENIED", "UNAUTHENTICATED"});
  std::vector<std::string> insecure;
  Table pushes({"PS", "APPLIED", "REJECTED STALE", "BEFORE RESTART", "INVALID", "DUPLICATE",
                "STALENESS P50/P90/MAX", "BYTES IN", "BYTES OUT"});
  for (size_t i = 0; i < reports.size(); ++i) {
    const ParameterServerReport& report = reports[i];
    if (!report.status.ok()) {
      servers.AddRow({absl::StrCat(i), report.address,
                      absl::StrCat("unreachable: ", report.status.status().ToString())});
      continue;
    }
    const ps::v1::StatusResponse& r = *report.status;
    std::string checkpoint = "-";
    if (r.last_checkpoint_unix_seconds() > 0) {
      checkpoint = absl::StrCat("step ", r.last_checkpoint_step(), ", ",
                                Ago(r.last_checkpoint_unix_seconds(), now));
    }
    servers.AddRow({absl::StrCat(r.shard_index()), report.address, absl::StrCat(r.slices_size()),
                    FormatBytes(r.parameter_bytes() + r.state_bytes()),
                    absl::StrCat(r.global_step()), absl::StrCat(r.examples_seen()),
                    absl::StrFormat("%.2f", r.epoch()), absl::StrFormat("%.4g", r.learning_rate()),
                    checkpoint, FormatDuration(r.uptime_seconds()),
                    r.eval_examples() > 0 ? Percent(r.eval_accuracy()) : "-"});
    pushes.AddRow({absl::StrCat(r.shard_index()), absl::StrCat(r.pushes_applied()),
                   absl::StrCat(r.pushes_rejected_stale()),
                   absl::StrCat(r.pushes_rejected_restarted()), absl::StrCat(r.pushes_invalid()),
                   absl::StrCat(r.pushes_duplicate()),
                   absl::StrCat(r.staleness_p50(), "/", r.staleness_p90(), "/",
                                r.staleness_max()),
                   FormatBytes(r.bytes_in()), FormatBytes(r.bytes_out())});
    security.AddRow({absl::StrCat(r.shard_index()),
                     absl::StrCat(r.transport_security().empty() ? "unknown"
                                                                 : r.transport_security(),
                                  r.insecure() ? " (--insecure)" : ""),
                     absl::StrCat(r.requests_denied()), absl::StrCat(r.requests_unauthenticated())});
    if (r.insecure()) insecure.push_back(absl::StrCat(r.shard_index()));
  }
  if (!insecure.empty()) {
    absl::StrAppend(&out, "WARNING: parameter server(s) ", absl::StrJoin(insecure, ", "),
                    " listen beyond loopback without transport security (--insecure): anyone "
                    "who reaches them can read the weights, push and end the training\n");
  }
  absl::StrAppend(&out, "\nParameter servers\n", servers.Render());
  if (s.servers_answering > 0) {
    absl::StrAppend(&out, "\nPushes\n", pushes.Render());
    absl::StrAppend(&out, "\nRequests refused to callers (denied: not allowed to; "
                          "unauthenticated: unidentified)\n",
                    security.Render());
  }

  out += "\nWorkers\n";
  if (s.workers.empty()) {
    out += "none seen yet\n";
  } else {
    Table workers({"WORKER", "LAST SEEN", "STEPS", "IMAGES/S", "PUSHES", "EXAMPLES", "STATE"});
    for (const ClusterWorker& w : s.workers) {
      workers.AddRow({absl::StrCat(w.worker_id, w.worker_id == 0 ? " (chief)" : ""),
                      w.seconds_since_seen < 0
                          ? std::string("not yet")
                          : absl::StrCat(FormatDuration(w.seconds_since_seen), " ago"),
                      absl::StrCat(w.steps), absl::StrFormat("%.1f", w.images_per_sec),
                      absl::StrCat(w.pushes), absl::StrCat(w.examples),
                      w.finished ? "finished" : "training"});
    }
    out += workers.Render();
  }
  return out;
}

std::string FormatClusterStatusJson(const std::vector<ParameterServerReport>& reports,
                                    absl::Time now) {
  const ClusterSummary s = SummarizeCluster(reports);
  auto evaluation = [](int64_t examples, double accuracy, double loss, int64_t step,
                       double unix_seconds, int64_t average_examples, double average_accuracy,
                       double average_loss) -> std::string {
    if (examples <= 0) return "null";
    const std::string average = average_examples <= 0
                                    ? "null"
                                    : JsonObject({{"accuracy", JsonNumber(average_accuracy)},
                                                  {"loss", JsonNumber(average_loss)},
                                                  {"examples", absl::StrCat(average_examples)}});
    return JsonObject({{"accuracy", JsonNumber(accuracy)},
                       {"loss", JsonNumber(loss)},
                       {"step", absl::StrCat(step)},
                       {"examples", absl::StrCat(examples)},
                       {"unix_seconds", JsonNumber(unix_seconds)},
                       {"weight_average", average}});
  };

  std::vector<std::string> servers;
  for (const ParameterServerReport& report : reports) {
    if (!report.status.ok()) {
      servers.push_back(JsonObject({{"address", JsonString(report.address)},
                                    {"ok", "false"},
                                    {"error", JsonString(report.status.status().ToString())}}));
      continue;
    }
    const ps::v1::StatusResponse& r = *report.status;
    std::vector<std::string> slices;
    for (const ps::v1::SliceInfo& slice : r.slices()) {
      slices.push_back(JsonObject({{"tensor", JsonString(slice.tensor())},
                                   {"begin", absl::StrCat(slice.begin())},
                                   {"end", absl::StrCat(slice.end())}}));
    }
    std::vector<std::string> workers;
    for (const ps::v1::WorkerStatus& w : r.workers()) {
      workers.push_back(JsonObject({{"worker_id", absl::StrCat(w.worker_id())},
                                    {"seconds_since_seen", JsonNumber(w.seconds_since_last_seen())},
                                    {"seconds_since_push", JsonNumber(w.seconds_since_last_push())},
                                    {"steps", absl::StrCat(w.steps())},
                                    {"images_per_sec", JsonNumber(w.images_per_sec())},
                                    {"pushes", absl::StrCat(w.pushes())},
                                    {"examples", absl::StrCat(w.examples())},
                                    {"finished", JsonBool(w.finished())}}));
    }
    std::vector<std::string> events;
    for (const ps::v1::MembershipEvent& e : r.membership_events()) {
      events.push_back(JsonObject({{"unix_seconds", JsonNumber(e.unix_seconds())},
                                   {"worker_id", absl::StrCat(e.worker_id())},
                                   {"kind", JsonString(EventVerb(e.kind()))},
                                   {"detail", JsonString(e.detail())}}));
    }
    std::string leases = "null";
    if (r.has_data_leases()) {
      const ps::v1::DataLeaseStatus& d = r.data_leases();
      std::vector<std::string> held;
      for (const ps::v1::DataLeaseStatus::Held& h : d.held()) {
        held.push_back(JsonObject({{"worker_id", absl::StrCat(h.worker_id())},
                                   {"epoch", absl::StrCat(h.block().epoch())},
                                   {"block", absl::StrCat(h.block().block())},
                                   {"seconds_held", JsonNumber(h.seconds_held())}}));
      }
      const std::string plan =
          d.has_data()
              ? JsonObject({{"num_examples", absl::StrCat(d.data().num_examples())},
                            {"blocks_per_epoch", absl::StrCat(d.data().blocks_per_epoch())},
                            {"epochs", absl::StrCat(d.data().epochs())},
                            {"seed", absl::StrCat(d.data().seed())}})
              : "null";
      leases = JsonObject({{"plan", plan},
                           {"epoch", absl::StrCat(d.epoch())},
                           {"blocks_completed", absl::StrCat(d.blocks_completed())},
                           {"blocks_total", absl::StrCat(d.blocks_total())},
                           {"held", JsonArray(held)},
                           {"blocks_returned", absl::StrCat(d.blocks_returned())},
                           {"blocks_reassigned", absl::StrCat(d.blocks_reassigned())},
                           {"late_completions", absl::StrCat(d.late_completions())}});
    }
    std::string checkpoint = "null";
    if (r.last_checkpoint_unix_seconds() > 0) {
      checkpoint = JsonObject({{"unix_seconds", JsonNumber(r.last_checkpoint_unix_seconds())},
                               {"step", absl::StrCat(r.last_checkpoint_step())},
                               {"path", JsonString(r.last_checkpoint_path())}});
    }
    servers.push_back(JsonObject({
        {"address", JsonString(report.address)},
        {"ok", "true"},
        {"shard_index", absl::StrCat(r.shard_index())},
        {"num_shards", absl::StrCat(r.num_shards())},
        {"plan_fingerprint", JsonString(Fingerprint(r.plan_fingerprint()))},
        {"model", JsonString(r.model())},
        {"slices", JsonArray(slices)},
        {"parameter_bytes", absl::StrCat(r.parameter_bytes())},
        {"state_bytes", absl::StrCat(r.state_bytes())},
        {"global_step", absl::StrCat(r.global_step())},
        {"examples_seen", absl::StrCat(r.examples_seen())},
        {"epoch", JsonNumber(r.epoch())},
        {"learning_rate", JsonNumber(r.learning_rate())},
        {"pushes_applied", absl::StrCat(r.pushes_applied())},
        {"pushes_rejected", JsonObject({{"stale", absl::StrCat(r.pushes_rejected_stale())},
                                        {"restarted", absl::StrCat(r.pushes_rejected_restarted())},
                                        {"invalid", absl::StrCat(r.pushes_invalid())},
                                        {"duplicate", absl::StrCat(r.pushes_duplicate())}})},
        {"staleness", JsonObject({{"p50", absl::StrCat(r.staleness_p50())},
                                  {"p90", absl::StrCat(r.staleness_p90())},
                                  {"max", absl::StrCat(r.staleness_max())},
                                  {"mean", JsonNumber(r.staleness_mean())}})},
        {"bytes_in", absl::StrCat(r.bytes_in())},
        {"bytes_out", absl::StrCat(r.bytes_out())},
        {"transport_security", JsonString(r.transport_security())},
        {"insecure", JsonBool(r.insecure())},
        {"requests_denied", absl::StrCat(r.requests_denied())},
        {"requests_unauthenticated", absl::StrCat(r.requests_unauthenticated())},
        {"last_checkpoint", checkpoint},
        {"uptime_seconds", JsonNumber(r.uptime_seconds())},
        {"evaluation", evaluation(r.eval_examples(), r.eval_accuracy(), r.eval_loss(),
                                  r.eval_step(), r.eval_unix_seconds(), r.eval_average_examples(),
                                  r.eval_average_accuracy(), r.eval_average_loss())},
        {"weight_ema_decay", JsonNumber(r.weight_ema_decay())},
        {"workers", JsonArray(workers)},
        {"finishing", JsonBool(r.finishing())},
        {"live_workers", absl::StrCat(r.live_workers())},
        {"max_workers", absl::StrCat(r.max_workers())},
        {"data_leases", leases},
        {"membership_events", JsonArray(events)},
        {"sync", r.sync_replicas()
                     ? JsonObject({
                           {"replicas_to_aggregate", absl::StrCat(r.replicas_to_aggregate())},
                           {"steps", absl::StrCat(r.sync_steps())},
                           {"gradients_needed", absl::StrCat(r.sync_gradients_needed())},
                           {"gradients_pending", absl::StrCat(r.sync_gradients_pending())},
                           {"pushes_dropped", absl::StrCat(r.sync_pushes_dropped())},
                           {"steps_incomplete", absl::StrCat(r.sync_steps_incomplete())},
                           {"waiting", JsonString(r.sync_waiting())},
                       })
                     : "null"},
    }));
  }

  std::vector<std::string> workers;
  for (const ClusterWorker& w : s.workers) {
    workers.push_back(JsonObject({{"worker_id", absl::StrCat(w.worker_id)},
                                  {"seconds_since_seen", JsonNumber(w.seconds_since_seen)},
                                  {"steps", absl::StrCat(w.steps)},
                                  {"images_per_sec", JsonNumber(w.images_per_sec)},
                                  {"pushes", absl::StrCat(w.pushes)},
                                  {"examples", absl::StrCat(w.examples)},
                                  {"finished", JsonBool(w.finished)}}));
  }
  const std::string summary = JsonObject({
      {"servers", absl::StrCat(s.servers)},
      {"servers_answering", absl::StrCat(s.servers_answering)},
      {"model", JsonString(s.model)},
      {"global_step", absl::StrCat(s.global_step)},
      {"examples_seen", absl::StrCat(s.examples_seen)},
      {"epoch", JsonNumber(s.epoch)},
      {"learning_rate", JsonNumber(s.learning_rate)},
      {"parameter_bytes", absl::StrCat(s.parameter_bytes)},
      {"state_bytes", absl::StrCat(s.state_bytes)},
      {"plans_agree", JsonBool(s.plans_agree)},
      {"finishing", JsonBool(s.finishing)},
      {"training_complete", JsonBool(s.training_complete)},
      {"evaluation",
       evaluation(s.eval_examples, s.eval_accuracy, s.eval_loss, s.eval_step, s.eval_unix_seconds,
                  s.eval_average_examples, s.eval_average_accuracy, s.eval_average_loss)},
      {"weight_ema_decay", JsonNumber(s.weight_ema_decay)},
  });
  return JsonObject({{"time", JsonNumber(UnixSeconds(now))},
                     {"summary", summary},
                     {"parameter_servers", JsonArray(servers)},
                     {"workers", JsonArray(workers)}});
}

}  // namespace mobilenet
