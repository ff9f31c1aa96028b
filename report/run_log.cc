#include "report/run_log.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mobilenet {
namespace {

// Longer lines are none the logs print (a status line of 64 workers is about 2,500
// characters) and are skipped: std::regex recurses per character and would exhaust the stack.
constexpr size_t kMaxLineLength = 16384;

std::vector<std::string> SplitLines(absl::string_view text) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, absl::ByAnyChar("\r\n"), absl::SkipEmpty())) {
    if (line.size() <= kMaxLineLength) lines.emplace_back(line);
  }
  return lines;
}

// strtod that accepts "nan" and "inf" as well; 0 for anything else unparsable.
double ToDouble(const std::string& text) { return std::strtod(text.c_str(), nullptr); }
int64_t ToInt(const std::string& text) { return std::strtoll(text.c_str(), nullptr, 10); }

const std::regex& ProgressPattern() {
  static const std::regex* pattern = new std::regex(
      R"(epoch ([0-9.]+)/[0-9]+  step ([0-9]+)  ([0-9.]+) img/s  loss (\S+)  acc ([0-9.]+)%)"
      R"(  lr \S+(?:  global ([0-9]+))?(?:  stale ([0-9.]+))?(?:  push ([0-9.]+)ms)?)"
      R"((?:  ETA \S+)?(?:  elapsed ([0-9hms]+))?)");
  return *pattern;
}

const std::regex& EvaluationPattern() {
  static const std::regex* pattern = new std::regex(
      R"(epoch ([0-9.]+)  global step ([0-9]+)  test accuracy ([0-9.]+)%  test loss (\S+))"
      R"(  \((\S+) elapsed\))"
      R"((?:  weight average: test accuracy ([0-9.]+)%  test loss (\S+))?)");
  return *pattern;
}

const std::regex& FinalAveragePattern() {
  static const std::regex* pattern = new std::regex(
      R"(^Weight average: test accuracy ([0-9.]+)% \(([0-9]+)/([0-9]+)\), test loss (\S+))");
  return *pattern;
}

const std::regex& FinalPattern() {
  static const std::regex* pattern = new std::regex(
      R"(Test accuracy: ([0-9.]+)% \(([0-9]+)/([0-9]+)\), test loss (\S+) at global step )"
      R"(([0-9]+))");
  return *pattern;
}

const std::regex& TrainedPattern() {
  static const std::regex* pattern = new std::regex(
      R"(Worker [0-9]+ trained [0-9]+ steps \([0-9]+ examples\) in (\S+), ([0-9.]+) images/s)");
  return *pattern;
}

const std::regex& PsStatusPattern() {
  static const std::regex* pattern = new std::regex(
      R"(^\[([0-9]{2}):([0-9]{2}):([0-9]{2}) ps [0-9]+/[0-9]+\] step ([0-9]+)  examples [0-9]+)"
      R"(  epoch ([0-9.]+)  .*staleness p50/p90/max ([0-9]+)/([0-9]+)/([0-9]+)(?:  workers: (.*))?)");
  return *pattern;
}

}  // namespace

std::optional<double> ParseShortDuration(absl::string_view text) {
  static const std::regex* pattern =
      new std::regex(R"(^(?:([0-9]+)h([0-9]{2})m|([0-9]+)m([0-9]{2})s|([0-9]+)s)$)");
  std::cmatch m;
  if (!std::regex_match(text.begin(), text.end(), m, *pattern)) return std::nullopt;
  if (m[1].matched) return 3600.0 * ToInt(m[1].str()) + 60.0 * ToInt(m[2].str());
  if (m[3].matched) return 60.0 * ToInt(m[3].str()) + ToInt(m[4].str());
  return static_cast<double>(ToInt(m[5].str()));
}

WorkerLog ParseWorkerLog(int task, absl::string_view text) {
  WorkerLog log;
  log.task = task;
  static const std::regex* batch = new std::regex(R"(, batch ([0-9]+), )");
  for (const std::string& line : SplitLines(text)) {
    std::smatch m;
    if (std::regex_search(line, m, EvaluationPattern())) {
      const std::optional<double> elapsed = ParseShortDuration(m[5].str());
      if (!elapsed.has_value()) continue;
      EvaluationPoint point{ToDouble(m[1].str()), ToInt(m[2].str()), ToDouble(m[3].str()),
                            ToDouble(m[4].str()), *elapsed};
      if (m[6].matched) {
        point.average_accuracy_percent = ToDouble(m[6].str());
        point.average_loss = ToDouble(m[7].str());
      }
      log.evaluations.push_back(point);
    } else if (std::regex_search(line, m, ProgressPattern())) {
      ProgressPoint p;
      p.epoch = ToDouble(m[1].str());
      p.step = ToInt(m[2].str());
      p.images_per_sec = ToDouble(m[3].str());
      p.loss = ToDouble(m[4].str());
      p.accuracy_percent = ToDouble(m[5].str());
      p.global_step = m[6].matched ? ToInt(m[6].str()) : p.step;
      if (m[7].matched) p.staleness = ToDouble(m[7].str());
      if (m[8].matched) p.push_latency_ms = ToDouble(m[8].str());
      if (m[9].matched) p.elapsed_seconds = ParseShortDuration(m[9].str()).value_or(-1);
      log.progress.push_back(p);
    } else if (std::regex_search(line, m, FinalPattern())) {
      log.final_evaluation =
          FinalEvaluation{ToDouble(m[1].str()), ToInt(m[2].str()), ToInt(m[3].str()),
                          ToDouble(m[4].str()), ToInt(m[5].str())};
    } else if (std::regex_search(line, m, FinalAveragePattern())) {
      log.final_average_evaluation = FinalEvaluation{
          ToDouble(m[1].str()), ToInt(m[2].str()), ToInt(m[3].str()), ToDouble(m[4].str()),
          log.final_evaluation.has_value() ? log.final_evaluation->global_step : 0};
    } else if (std::regex_search(line, m, TrainedPattern())) {
      const std::optional<double> seconds = ParseShortDuration(m[1].str());
      if (seconds.has_value()) log.trained_seconds = *seconds;
      log.images_per_sec = ToDouble(m[2].str());
    } else if (log.batch_size == 0 && std::regex_search(line, m, *batch)) {
      log.batch_size = static_cast<int>(ToInt(m[1].str()));
    }
  }
  return log;
}

PsLog ParsePsLog(int task, absl::string_view text) {
  PsLog log;
  log.task = task;
  static const std::regex* stamp = new std::regex(R"(^\[([0-9]{2}):([0-9]{2}):([0-9]{2}) ps )");
  static const std::regex* worker_rate =
      new std::regex(R"(([0-9]+)(?: finished)? ?\(([0-9.]+) img/s)");
  static const std::regex* staleness_line =
      new std::regex(R"(\] staleness of the [0-9]+ pushes applied by this run: (.*)$)");
  static const std::regex* staleness_entry = new std::regex(R"(([0-9]+)(\+)?:([0-9]+))");
  double first = -1;
  double previous = -1;
  double day_offset = 0;  // the clock passing midnight
  for (const std::string& line : SplitLines(text)) {
    std::smatch m;
    if (!std::regex_search(line, m, *stamp)) continue;
    double clock = 3600.0 * ToInt(m[1].str()) + 60.0 * ToInt(m[2].str()) + ToInt(m[3].str());
    if (previous >= 0 && clock + day_offset < previous) day_offset += 86400;
    clock += day_offset;
    previous = clock;
    if (first < 0) first = clock;
    if (std::regex_search(line, m, *staleness_line)) {
      std::vector<StalenessCount> counts;
      const std::string entries = m[1].str();
      for (auto it = std::sregex_iterator(entries.begin(), entries.end(), *staleness_entry);
           it != std::sregex_iterator(); ++it) {
        counts.push_back({ToInt((*it)[1].str()), ToInt((*it)[3].str()), (*it)[2].matched});
      }
      log.staleness_counts = std::move(counts);
      continue;
    }
    if (!std::regex_search(line, m, PsStatusPattern())) continue;
    PsStatusPoint p;
    p.seconds = clock - first;
    p.step = ToInt(m[4].str());
    p.epoch = ToDouble(m[5].str());
    p.staleness_p50 = static_cast<int>(ToInt(m[6].str()));
    p.staleness_p90 = static_cast<int>(ToInt(m[7].str()));
    p.staleness_max = static_cast<int>(ToInt(m[8].str()));
    const std::string workers = m[9].str();
    for (auto it = std::sregex_iterator(workers.begin(), workers.end(), *worker_rate);
         it != std::sregex_iterator(); ++it) {
      p.workers.push_back({static_cast<int>(ToInt((*it)[1].str())), ToDouble((*it)[2].str())});
    }
    log.statuses.push_back(std::move(p));
  }
  return log;
}

const WorkerLog* RunLog::chief() const {
  for (const WorkerLog& w : workers) {
    if (w.task == 0) return &w;
  }
  return nullptr;
}

absl::StatusOr<RunLog> ReadRunLog(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::directory_iterator it(run_dir, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat(run_dir, ": cannot read the run folder: ", error.message()));
  }
  RunLog run;
  run.run_dir = run_dir;
  static const std::regex* name = new std::regex(R"(^(worker|ps)-([0-9]+)\.log$)");
  for (const fs::directory_entry& entry : it) {
    const std::string file = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(file, m, *name)) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    const int task = static_cast<int>(ToInt(m[2].str()));
    if (m[1].str() == "worker") {
      run.workers.push_back(ParseWorkerLog(task, text.str()));
    } else {
      run.servers.push_back(ParsePsLog(task, text.str()));
    }
  }
  if (run.workers.empty() && run.servers.empty()) {
    return absl::NotFoundError(
        absl::StrCat(run_dir, ": no worker-N.log or ps-N.log in the run folder"));
  }
  std::sort(run.workers.begin(), run.workers.end(),
            [](const WorkerLog& a, const WorkerLog& b) { return a.task < b.task; });
  std::sort(run.servers.begin(), run.servers.end(),
            [](const PsLog& a, const PsLog& b) { return a.task < b.task; });
  return run;
}

}  // namespace mobilenet
