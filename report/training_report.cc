#include "report/training_report.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "report/svg_chart.h"

namespace mobilenet {
namespace {

std::string Duration(double seconds) {
  if (seconds < 0) return "unknown";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm%02ds", s / 3600, (s % 3600) / 60, s % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string Figure(const std::string& svg, const std::string& source) {
  return absl::StrCat("<figure>", svg, "<figcaption>", EscapeXml(source),
                      "</figcaption></figure>\n");
}

std::string WorkerName(int task) { return absl::StrCat("worker ", task); }

// The caption of a chart: where its data came from, in the logs or in Status.
std::string Source(const RunLog& run, const char* from_logs, const char* from_status) {
  return run.from_status ? from_status : from_logs;
}

// The evaluations of the chief against elapsed time or global step; the final evaluation
// (after training) at the end of the chief's training or at its global step.
LineSeries EvaluationSeries(const WorkerLog* chief, bool accuracy, bool by_step) {
  LineSeries s{accuracy ? "test accuracy" : "test loss", {}};
  if (chief == nullptr) return s;
  for (const EvaluationPoint& e : chief->evaluations) {
    s.points.push_back({by_step ? static_cast<double>(e.global_step) : e.elapsed_seconds,
                        accuracy ? e.accuracy_percent : e.loss});
  }
  if (chief->final_evaluation.has_value() && (by_step || chief->trained_seconds >= 0)) {
    const FinalEvaluation& f = *chief->final_evaluation;
    s.points.push_back({by_step ? static_cast<double>(f.global_step) : chief->trained_seconds,
                        accuracy ? f.accuracy_percent : f.loss});
  }
  return s;
}

// The evaluations of the chief's weight average (--weight_ema_decay), placed as above; no
// points when it evaluated none.
LineSeries AverageEvaluationSeries(const WorkerLog* chief, bool accuracy, bool by_step) {
  LineSeries s{accuracy ? "test accuracy, weight average" : "test loss, weight average", {}};
  if (chief == nullptr) return s;
  for (const EvaluationPoint& e : chief->evaluations) {
    if (e.average_accuracy_percent < 0) continue;
    s.points.push_back({by_step ? static_cast<double>(e.global_step) : e.elapsed_seconds,
                        accuracy ? e.average_accuracy_percent : e.average_loss});
  }
  if (chief->final_average_evaluation.has_value() && (by_step || chief->trained_seconds >= 0)) {
    const FinalEvaluation& f = *chief->final_average_evaluation;
    s.points.push_back({by_step ? static_cast<double>(f.global_step) : chief->trained_seconds,
                        accuracy ? f.accuracy_percent : f.loss});
  }
  return s;
}

// The test-set series of one chart: the weights', and their average's when evaluated.
std::vector<LineSeries> TestSeries(const WorkerLog* chief, bool accuracy, bool by_step) {
  std::vector<LineSeries> series = {EvaluationSeries(chief, accuracy, by_step)};
  LineSeries average = AverageEvaluationSeries(chief, accuracy, by_step);
  if (!average.points.empty()) series.push_back(std::move(average));
  return series;
}

std::string Summary(const RunLog& run) {
  const WorkerLog* chief = run.chief();
  std::string rows;
  auto row = [&rows](const std::string& name, const std::string& value) {
    absl::StrAppend(&rows, "<tr><th>", EscapeXml(name), "</th><td>", EscapeXml(value),
                    "</td></tr>");
  };
  if (chief != nullptr && chief->final_evaluation.has_value()) {
    const FinalEvaluation& f = *chief->final_evaluation;
    row("Final test accuracy",
        absl::StrFormat("%.2f%% (%d/%d) at global step %d", f.accuracy_percent, f.correct, f.total,
                        f.global_step));
    row("Final test loss", absl::StrFormat("%.4f", f.loss));
    if (chief->final_average_evaluation.has_value()) {
      const FinalEvaluation& a = *chief->final_average_evaluation;
      row("Final test accuracy, weight average",
          absl::StrFormat("%.2f%% (%d/%d), test loss %.4f", a.accuracy_percent, a.correct, a.total,
                          a.loss));
    }
  } else if (chief != nullptr && !chief->evaluations.empty()) {
    const EvaluationPoint& e = chief->evaluations.back();
    row(run.from_status ? "Latest test accuracy" : "Last test accuracy",
        absl::StrCat(absl::StrFormat("%.2f%% at global step %d", e.accuracy_percent, e.global_step),
                     run.from_status ? " (the chief's latest evaluation, as the servers report it)"
                                     : " (no final evaluation in the log)"));
  } else {
    row("Final test accuracy", run.from_status ? "no evaluation reported yet" : "not in the logs");
  }
  if (run.from_status) {
    double watched = 0;
    int64_t step = 0;
    for (const PsLog& ps : run.servers) {
      if (ps.statuses.empty()) continue;
      watched = std::max(watched, ps.statuses.back().seconds);
      step = std::max(step, ps.statuses.back().step);
    }
    row("Watched for", absl::StrCat(Duration(watched), " (polling the servers' Status)"));
    row("Global step", absl::StrCat(step, " (the furthest server's, at the last poll)"));
  } else {
    double wall = -1;
    for (const WorkerLog& w : run.workers) wall = std::max(wall, w.trained_seconds);
    row("Training wall time", absl::StrCat(Duration(wall), " (the slowest worker's training)"));
  }
  row("Workers", absl::StrCat(run.workers.size()));
  row("Parameter servers", absl::StrCat(run.servers.size()));
  for (const WorkerLog& w : run.workers) {
    if (run.from_status) {
      row(WorkerName(w.task),
          w.progress.empty()
              ? std::string("no step reported yet")
              : absl::StrFormat("%.1f images/s at its step %d (its latest report)",
                                w.progress.back().images_per_sec, w.progress.back().step));
      continue;
    }
    row(WorkerName(w.task),
        w.images_per_sec >= 0
            ? absl::StrFormat("%.1f images/s over %s", w.images_per_sec,
                              Duration(w.trained_seconds))
            : absl::StrFormat("did not finish (%d progress lines)", w.progress.size()));
  }
  return absl::StrCat("<table class=\"summary\">", rows, "</table>\n");
}

// Per staleness 0, 1, ... up to the largest seen, the share of each server's applied
// pushes (a folded last entry, "63+", counts every staler push too).
BarChart StalenessDistribution(const RunLog& run) {
  BarChart chart{"staleness-distribution",
                 "Staleness distribution of applied pushes",
                 "% of the server's applied pushes",
                 {},
                 {}};
  int64_t largest = -1;
  for (const PsLog& ps : run.servers) {
    for (const StalenessCount& c : ps.staleness_counts) largest = std::max(largest, c.staleness);
  }
  // Staleness values are few (the server lists at most 64); a corrupt log cannot make the
  // chart huge.
  largest = std::min<int64_t>(largest, 63);
  bool folded = false;  // the last bar also counts staler pushes
  for (const PsLog& ps : run.servers) {
    for (const StalenessCount& c : ps.staleness_counts) {
      folded = folded || c.staleness > largest || (c.or_more && c.staleness == largest);
    }
  }
  for (int64_t v = 0; v <= largest; ++v) {
    chart.categories.push_back(absl::StrCat(v, folded && v == largest ? "+" : ""));
  }
  for (const PsLog& ps : run.servers) {
    if (ps.staleness_counts.empty()) continue;
    int64_t total = 0;
    for (const StalenessCount& c : ps.staleness_counts) total += c.pushes;
    BarSeries series{absl::StrCat("ps ", ps.task), std::vector<double>(largest + 1, 0.0)};
    for (const StalenessCount& c : ps.staleness_counts) {
      const int64_t index = std::min(c.staleness, largest);
      if (index >= 0 && total > 0) series.values[index] += 100.0 * c.pushes / total;
    }
    chart.series.push_back(std::move(series));
  }
  return chart;
}

std::string Page(const std::string& title, const std::string& body) {
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", EscapeXml(title),
      "</title><style>body{font-family:sans-serif;margin:24px;max-width:760px;color:#222}"
      "table.summary{border-collapse:collapse}table.summary th{text-align:left;"
      "padding:2px 16px 2px 0}figure{margin:16px 0 28px 0}figcaption{color:#555;"
      "font-size:13px}</style></head>\n<body><h1>",
      EscapeXml(title), "</h1>\n", body, "</body></html>\n");
}

}  // namespace

std::string RenderTrainingReport(const RunLog& run) {
  const WorkerLog* chief = run.chief();
  const PsLog* ps0 = run.servers.empty() ? nullptr : &run.servers.front();
  std::string body;

  body += "<h2>Test set</h2>\n";
  const std::string eval_source =
      Source(run,
             "From worker-0.log (the chief): its evaluation lines \"epoch E  global step S  test "
             "accuracy A%  test loss L  (T elapsed)\" and the final \"Test accuracy: ...\" line, "
             "placed at the end of the chief's training.",
             "From the servers' Status: the chief's latest evaluation (eval_accuracy, eval_loss, "
             "eval_step) at each poll, placed at the time the chief reported it; evaluations "
             "between two polls are missed.");
  const std::string time_axis =
      run.from_status ? "seconds since the first poll" : "seconds since the chief started training";
  body += Figure(RenderLineChart({"accuracy-time", "Test accuracy over time", time_axis,
                                  "accuracy (%)", TestSeries(chief, true, false)}),
                 eval_source);
  body += Figure(RenderLineChart({"accuracy-step", "Test accuracy by global step", "global step",
                                  "accuracy (%)", TestSeries(chief, true, true)}),
                 eval_source);
  body += Figure(RenderLineChart({"loss-time", "Test loss over time", time_axis, "loss",
                                  TestSeries(chief, false, false)}),
                 eval_source);
  LineChart loss_step{"loss-step", "Loss by global step", "global step", "loss",
                      TestSeries(chief, false, true)};
  for (const WorkerLog& w : run.workers) {
    if (run.from_status) break;  // workers do not report their loss to the servers
    LineSeries s{absl::StrCat(WorkerName(w.task), " training loss"), {}};
    for (const ProgressPoint& p : w.progress) {
      if (p.images_per_sec > 0) s.points.push_back({static_cast<double>(p.global_step), p.loss});
    }
    loss_step.series.push_back(std::move(s));
  }
  body += Figure(RenderLineChart(loss_step),
                 Source(run,
                        "Test loss as above; training loss from each worker-N.log's progress "
                        "lines (the average over its last 10 seconds of batches).",
                        "Test loss as above (workers do not report their training loss to "
                        "the servers; their logs have it)."));

  body += "<h2>Throughput and staleness</h2>\n";
  const std::string ps_axis =
      run.from_status ? "seconds since the first poll" : "seconds since ps-0 started";
  LineChart rate{"images-per-second", "Images/s per worker", ps_axis, "images/s", {}};
  LineChart staleness{
      "staleness", "Staleness of applied pushes", ps_axis, "global steps behind", {}};
  if (ps0 != nullptr) {
    LineSeries p50{"p50", {}}, p90{"p90", {}}, max{"max", {}};
    std::map<int, LineSeries> by_task;  // in task order (worker 2 before worker 10)
    for (const PsStatusPoint& p : ps0->statuses) {
      for (const PsStatusPoint::WorkerRate& w : p.workers) {
        LineSeries& series = by_task[w.task];
        series.name = WorkerName(w.task);
        series.points.push_back({p.seconds, w.images_per_sec});
      }
      p50.points.push_back({p.seconds, static_cast<double>(p.staleness_p50)});
      p90.points.push_back({p.seconds, static_cast<double>(p.staleness_p90)});
      max.points.push_back({p.seconds, static_cast<double>(p.staleness_max)});
    }
    for (auto& [task, series] : by_task) rate.series.push_back(std::move(series));
    staleness.series = {p50, p90, max};
  }
  // The workers' own progress lines when they carry their time (since "elapsed" was added),
  // otherwise what they reported to ps-0.
  LineChart worker_rate{"images-per-second",
                        "Images/s per worker",
                        run.from_status ? "seconds since the first poll"
                                        : "seconds since the worker started training",
                        "images/s",
                        {}};
  for (const WorkerLog& w : run.workers) {
    LineSeries s{WorkerName(w.task), {}};
    for (const ProgressPoint& p : w.progress) {
      if (p.elapsed_seconds >= 0 && p.images_per_sec > 0) {
        s.points.push_back({p.elapsed_seconds, p.images_per_sec});
      }
    }
    if (!s.points.empty()) worker_rate.series.push_back(std::move(s));
  }
  if (!worker_rate.series.empty()) {
    body += Figure(RenderLineChart(worker_rate),
                   Source(run,
                          "From each worker-N.log: its progress lines' img/s (over the last "
                          "10 seconds) against their \"elapsed\" time.",
                          "From the servers' Status: the images/s each worker reported with "
                          "its latest push, at each poll."));
  } else {
    body += Figure(RenderLineChart(rate),
                   "From ps-0.log: each periodic status line's \"workers: N(R img/s, ...)\", "
                   "the rate each worker last reported to the server (a finished worker keeps "
                   "its last rate).");
  }
  body += Figure(RenderLineChart(staleness),
                 Source(run,
                        "From ps-0.log: each periodic status line's \"staleness p50/p90/max\", "
                        "the distribution of the staleness of every push the server applied "
                        "since it started (cumulative, not per interval).",
                        "From ps-0's Status at each poll: staleness p50/p90/max of every push "
                        "it applied since it started (cumulative, not per interval)."));
  body += Figure(RenderBarChart(StalenessDistribution(run)),
                 Source(run,
                        "From each ps-N.log's \"staleness of the N pushes applied by this run\" "
                        "line (logged when training ends): the share of applied pushes per "
                        "staleness, i.e. how many versions the shard advanced between a "
                        "worker's pull and its push.",
                        "From each server's Status at the last poll (staleness_counts): the "
                        "share of applied pushes per staleness, i.e. how many versions the "
                        "shard advanced between a worker's pull and its push."));

  if (run.from_status) {
    const std::string title = absl::StrCat("Training report: ", run.run_dir);
    return Page(title, absl::StrCat(Summary(run), body));
  }
  body += "<h2>Step time</h2>\n";
  BarChart step_time{"step-time",
                     "Mean step time and push latency per worker",
                     "milliseconds",
                     {},
                     {{"step time", {}}, {"push latency", {}}}};
  for (const WorkerLog& w : run.workers) {
    double rate_sum = 0, push_sum = 0;
    int rate_n = 0, push_n = 0;
    for (const ProgressPoint& p : w.progress) {
      if (p.images_per_sec <= 0) continue;  // the first line, before any rate
      rate_sum += p.images_per_sec;
      ++rate_n;
      if (p.push_latency_ms >= 0) {
        push_sum += p.push_latency_ms;
        ++push_n;
      }
    }
    step_time.categories.push_back(WorkerName(w.task));
    step_time.series[0].values.push_back(
        rate_n > 0 && w.batch_size > 0 ? 1000.0 * w.batch_size / (rate_sum / rate_n) : -1);
    step_time.series[1].values.push_back(push_n > 0 ? push_sum / push_n : -1);
  }
  body += Figure(RenderBarChart(step_time),
                 "From each worker-N.log: step time is the batch size over the mean of the "
                 "progress lines' img/s; push latency the mean of their \"push\" field (the "
                 "push and pull overlap the next step's computation unless "
                 "--overlap_communication=false, so the two do not add up).");

  const std::string title = absl::StrCat("Training report: ", run.run_dir);
  return Page(title, absl::StrCat(Summary(run), body));
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  FILE* f = fopen(temp.c_str(), "wb");
  if (f == nullptr) {
    return absl::UnavailableError(absl::StrCat(temp, ": cannot create: ", strerror(errno)));
  }
  const bool written = fwrite(contents.data(), 1, contents.size(), f) == contents.size();
  const bool closed = fclose(f) == 0;
  if (!written || !closed) {
    const int error = errno;
    remove(temp.c_str());
    return absl::UnavailableError(absl::StrCat(temp, ": cannot write: ", strerror(error)));
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    remove(temp.c_str());
    return absl::UnavailableError(absl::StrCat(path, ": cannot replace: ", strerror(error)));
  }
  return absl::OkStatus();
}

absl::Status WriteTrainingReport(const std::string& run_dir, const std::string& out_path) {
  ASSIGN_OR_RETURN(RunLog run, ReadRunLog(run_dir));
  return WriteFileAtomically(out_path, RenderTrainingReport(run));
}

}  // namespace mobilenet
