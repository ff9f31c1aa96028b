#include "parameter_server/core/model_checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/checkpoint_series.h"
#include "common/class_names.h"
#include "common/status_macros.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

constexpr char kSliceSeparator = '@';

absl::Status MissingKey(const std::string& path, const std::string& key) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": checkpoint metadata lacks \"", key, "\" (not a model checkpoint?)"));
}

absl::StatusOr<std::string> GetKey(const Checkpoint& c, const std::string& path,
                                   const std::string& key) {
  auto it = c.metadata.find(key);
  if (it == c.metadata.end()) return MissingKey(path, key);
  return it->second;
}

absl::Status BadValue(const std::string& path, const std::string& key,
                      const std::string& value) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": metadata \"", key, "\" has malformed value \"", value, "\""));
}

absl::StatusOr<int> GetInt(const Checkpoint& c, const std::string& path,
                           const std::string& key) {
  ASSIGN_OR_RETURN(std::string text, GetKey(c, path, key));
  int value;
  if (!absl::SimpleAtoi(text, &value)) return BadValue(path, key, text);
  return value;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> GetClassNames(const Checkpoint& checkpoint,
                                                       const std::string& path, int num_classes) {
  auto it = checkpoint.metadata.find(kClassNamesKey);
  if (it == checkpoint.metadata.end()) return std::vector<std::string>();
  std::vector<std::string> names = ParseClassNames(it->second);
  const absl::Status valid = CheckClassNames(names, num_classes);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": metadata \"", kClassNamesKey, "\": ", valid.message()));
  }
  return names;
}

void PutModelConfig(const MobileNetConfig& config, Checkpoint* checkpoint) {
  checkpoint->metadata["model.alpha"] = absl::StrFormat("%.9g", config.alpha);
  checkpoint->metadata["model.resolution"] = absl::StrCat(config.resolution);
  checkpoint->metadata["model.input_channels"] = absl::StrCat(config.input_channels);
  checkpoint->metadata["model.num_classes"] = absl::StrCat(config.num_classes);
  checkpoint->metadata["model.shallow"] = config.shallow ? "true" : "false";
}

absl::StatusOr<MobileNetConfig> GetModelConfig(const Checkpoint& checkpoint,
                                               const std::string& path) {
  MobileNetConfig config;
  ASSIGN_OR_RETURN(std::string alpha, GetKey(checkpoint, path, "model.alpha"));
  if (!absl::SimpleAtof(alpha, &config.alpha)) return BadValue(path, "model.alpha", alpha);
  ASSIGN_OR_RETURN(config.resolution, GetInt(checkpoint, path, "model.resolution"));
  ASSIGN_OR_RETURN(config.input_channels, GetInt(checkpoint, path, "model.input_channels"));
  ASSIGN_OR_RETURN(config.num_classes, GetInt(checkpoint, path, "model.num_classes"));
  ASSIGN_OR_RETURN(std::string shallow, GetKey(checkpoint, path, "model.shallow"));
  if (shallow != "true" && shallow != "false") return BadValue(path, "model.shallow", shallow);
  config.shallow = shallow == "true";
  return config;
}

Checkpoint ShardStateToCheckpoint(const ShardState& state, const MobileNetConfig& config,
                                  const ParameterLayout& parameters,
                                  const ParameterLayout& state_layout) {
  Checkpoint checkpoint;
  PutModelConfig(config, &checkpoint);
  checkpoint.metadata["format"] = "mobilenet-shard";
  checkpoint.counters["version"] = state.version;
  checkpoint.counters["examples_seen"] = state.examples_seen;
  checkpoint.tensors.reserve(state.tensors.size());
  for (const ShardTensor& t : state.tensors) {
    CheckpointTensor out;
    // A whole tensor (weights, moving statistic or an optimizer slot of a whole tensor)
    // keeps its shape; anything else is stored flat with its range in the name.
    const TensorView* view = nullptr;
    std::string base = t.name;
    std::string slot;
    auto found = parameters.Find(t.name);
    if (!found.ok()) found = state_layout.Find(t.name);
    if (!found.ok()) {
      const size_t slash = t.name.rfind('/');
      if (slash != std::string::npos) {
        base = t.name.substr(0, slash);
        found = parameters.Find(base);
      }
    }
    if (found.ok()) view = *found;
    if (view != nullptr && t.begin == 0 && t.end == view->size) {
      out.name = t.name;
      out.shape = view->shape;
    } else {
      out.name = absl::StrCat(t.name, std::string(1, kSliceSeparator), t.begin, ":", t.end);
      out.shape = {t.end - t.begin};
    }
    out.data = t.values;
    checkpoint.tensors.push_back(std::move(out));
  }
  return checkpoint;
}

absl::StatusOr<ShardState> CheckpointToShardState(const Checkpoint& checkpoint) {
  ShardState state;
  auto counter = [&](const char* key) -> int64_t {
    auto it = checkpoint.counters.find(key);
    return it == checkpoint.counters.end() ? 0 : it->second;
  };
  state.version = counter("version");
  state.examples_seen = counter("examples_seen");
  for (const CheckpointTensor& t : checkpoint.tensors) {
    ShardTensor out;
    const size_t at = t.name.rfind(kSliceSeparator);
    if (at == std::string::npos) {
      out.name = t.name;
      out.begin = 0;
      out.end = static_cast<int64_t>(t.data.size());
    } else {
      out.name = t.name.substr(0, at);
      std::vector<std::string> range = absl::StrSplit(t.name.substr(at + 1), ':');
      if (range.size() != 2 || !absl::SimpleAtoi(range[0], &out.begin) ||
          !absl::SimpleAtoi(range[1], &out.end) || out.begin < 0 || out.end < out.begin ||
          out.end - out.begin != static_cast<int64_t>(t.data.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint tensor \"", t.name, "\": expected \"<name>@<begin>:<end>\" with ",
            t.data.size(), " values"));
      }
    }
    out.values = t.data;
    state.tensors.push_back(std::move(out));
  }
  return state;
}

namespace {

constexpr char kLedgerWorkers[] = "ledger.num_workers";

std::string WorkerKey(size_t worker, const char* field) {
  return absl::StrCat("ledger.worker.", worker, ".", field);
}

// Server 0's data leases (elastic workers): counters "leases.*" and metadata
// "leases.open_blocks", the global indices of the blocks not completed below next_block,
// comma-separated and ascending. Absent: no plan was fixed.
constexpr char kLeasesNextBlock[] = "leases.next_block";
constexpr char kLeasesOpenBlocks[] = "leases.open_blocks";

void PutDataLeases(const DataLeaseState& leases, Checkpoint* checkpoint) {
  auto& counters = checkpoint->counters;
  counters["leases.num_examples"] = leases.plan.num_examples();
  counters["leases.blocks_per_epoch"] = leases.plan.blocks_per_epoch();
  counters["leases.epochs"] = leases.plan.epochs();
  // The seed's 64 bits, as the counter's.
  counters["leases.seed"] = static_cast<int64_t>(leases.plan.seed());
  counters[kLeasesNextBlock] = leases.next_block;
  counters["leases.reassigned"] = leases.blocks_reassigned;
  counters["leases.late_completions"] = leases.late_completions;
  checkpoint->metadata[kLeasesOpenBlocks] = absl::StrJoin(leases.open_blocks, ",");
}

absl::StatusOr<std::optional<DataLeaseState>> GetDataLeases(const Checkpoint& checkpoint,
                                                            const std::string& path) {
  const auto& counters = checkpoint.counters;
  if (counters.count(kLeasesNextBlock) == 0) return std::optional<DataLeaseState>();
  auto counter = [&](const std::string& key) -> absl::StatusOr<int64_t> {
    auto it = counters.find(key);
    if (it == counters.end()) return MissingKey(path, key);
    return it->second;
  };
  auto int32_counter = [&](const std::string& key) -> absl::StatusOr<int32_t> {
    ASSIGN_OR_RETURN(const int64_t value, counter(key));
    if (value < 0 || value > std::numeric_limits<int32_t>::max()) {
      return BadValue(path, key, absl::StrCat(value));
    }
    return static_cast<int32_t>(value);
  };
  DataLeaseState leases;
  ASSIGN_OR_RETURN(const int64_t num_examples, counter("leases.num_examples"));
  leases.plan.set_num_examples(num_examples);
  ASSIGN_OR_RETURN(const int32_t blocks_per_epoch, int32_counter("leases.blocks_per_epoch"));
  leases.plan.set_blocks_per_epoch(blocks_per_epoch);
  ASSIGN_OR_RETURN(const int32_t epochs, int32_counter("leases.epochs"));
  leases.plan.set_epochs(epochs);
  ASSIGN_OR_RETURN(const int64_t seed, counter("leases.seed"));
  leases.plan.set_seed(static_cast<uint64_t>(seed));
  ASSIGN_OR_RETURN(leases.next_block, counter(kLeasesNextBlock));
  ASSIGN_OR_RETURN(leases.blocks_reassigned, counter("leases.reassigned"));
  ASSIGN_OR_RETURN(leases.late_completions, counter("leases.late_completions"));
  ASSIGN_OR_RETURN(const std::string open, GetKey(checkpoint, path, kLeasesOpenBlocks));
  if (!open.empty()) {
    for (absl::string_view piece : absl::StrSplit(open, ',')) {
      int64_t block = 0;
      if (!absl::SimpleAtoi(piece, &block) || piece.empty() || piece[0] == '+' || piece[0] == ' ' ||
          piece.back() == ' ') {
        return BadValue(path, kLeasesOpenBlocks, open);
      }
      leases.open_blocks.push_back(block);
    }
  }
  const absl::Status valid = CheckDataLeaseState(leases);
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", valid.message()));
  return std::optional<DataLeaseState>(std::move(leases));
}

}  // namespace

void PutLedger(const LedgerState& ledger, Checkpoint* checkpoint) {
  auto& counters = checkpoint->counters;
  counters[kLedgerWorkers] = static_cast<int64_t>(ledger.workers.size());
  for (size_t i = 0; i < ledger.workers.size(); ++i) {
    counters[WorkerKey(i, "pushes")] = ledger.workers[i].pushes;
    counters[WorkerKey(i, "examples")] = ledger.workers[i].examples;
    counters[WorkerKey(i, "steps")] = ledger.workers[i].reported_steps;
    counters[WorkerKey(i, "finished")] = ledger.workers[i].finished ? 1 : 0;
  }
  counters["ledger.unattributed_pushes"] = ledger.unattributed_pushes;
  counters["ledger.unattributed_examples"] = ledger.unattributed_examples;
  counters["ledger.training_complete"] = ledger.training_complete ? 1 : 0;
  if (ledger.sync_steps > 0) counters["ledger.sync_steps"] = ledger.sync_steps;
  if (!ledger.class_names.empty()) {
    checkpoint->metadata[kClassNamesKey] = FormatClassNames(ledger.class_names);
  }
  if (ledger.evaluation.has_value()) {
    counters["evaluation.global_step"] = ledger.evaluation->global_step;
    counters["evaluation.examples"] = ledger.evaluation->examples;
    counters["evaluation.correct"] = ledger.evaluation->correct;
    checkpoint->metadata["evaluation.loss"] = absl::StrFormat("%.17g", ledger.evaluation->loss);
    checkpoint->metadata["evaluation.unix_seconds"] =
        absl::StrFormat("%.17g", ledger.evaluation->unix_seconds);
    if (ledger.evaluation->average_examples > 0) {
      counters["evaluation.average_examples"] = ledger.evaluation->average_examples;
      counters["evaluation.average_correct"] = ledger.evaluation->average_correct;
      checkpoint->metadata["evaluation.average_loss"] =
          absl::StrFormat("%.17g", ledger.evaluation->average_loss);
    }
  }
  if (ledger.data_leases.has_value()) PutDataLeases(*ledger.data_leases, checkpoint);
}

absl::StatusOr<LedgerState> GetLedger(const Checkpoint& checkpoint, const std::string& path,
                                      int64_t version, int64_t examples_seen) {
  LedgerState ledger;
  ASSIGN_OR_RETURN(ledger.class_names, GetClassNames(checkpoint, path, /*num_classes=*/-1));
  ASSIGN_OR_RETURN(ledger.data_leases, GetDataLeases(checkpoint, path));
  const auto& counters = checkpoint.counters;
  auto workers = counters.find(kLedgerWorkers);
  if (workers == counters.end()) {
    ledger.unattributed_pushes = version;
    ledger.unattributed_examples = examples_seen;
    return ledger;
  }
  auto counter = [&](const std::string& key) -> absl::StatusOr<int64_t> {
    auto it = counters.find(key);
    if (it == counters.end()) return MissingKey(path, key);
    return it->second;
  };
  if (workers->second < 0 || workers->second > (int64_t{1} << 20)) {
    return BadValue(path, kLedgerWorkers, absl::StrCat(workers->second));
  }
  ledger.workers.resize(workers->second);
  for (size_t i = 0; i < ledger.workers.size(); ++i) {
    ASSIGN_OR_RETURN(ledger.workers[i].pushes, counter(WorkerKey(i, "pushes")));
    ASSIGN_OR_RETURN(ledger.workers[i].examples, counter(WorkerKey(i, "examples")));
    ASSIGN_OR_RETURN(ledger.workers[i].reported_steps, counter(WorkerKey(i, "steps")));
    ASSIGN_OR_RETURN(const int64_t finished, counter(WorkerKey(i, "finished")));
    ledger.workers[i].finished = finished != 0;
  }
  ASSIGN_OR_RETURN(ledger.unattributed_pushes, counter("ledger.unattributed_pushes"));
  ASSIGN_OR_RETURN(ledger.unattributed_examples, counter("ledger.unattributed_examples"));
  ASSIGN_OR_RETURN(const int64_t complete, counter("ledger.training_complete"));
  ledger.training_complete = complete != 0;
  // Only checkpoints of synchronous runs have it.
  if (counters.count("ledger.sync_steps") > 0) {
    ASSIGN_OR_RETURN(ledger.sync_steps, counter("ledger.sync_steps"));
  }
  if (counters.count("evaluation.global_step") > 0) {
    Evaluation evaluation;
    ASSIGN_OR_RETURN(evaluation.global_step, counter("evaluation.global_step"));
    ASSIGN_OR_RETURN(evaluation.examples, counter("evaluation.examples"));
    ASSIGN_OR_RETURN(evaluation.correct, counter("evaluation.correct"));
    for (auto [key, value] : {std::make_pair("evaluation.loss", &evaluation.loss),
                              std::make_pair("evaluation.unix_seconds", &evaluation.unix_seconds)}) {
      ASSIGN_OR_RETURN(const std::string text, GetKey(checkpoint, path, key));
      if (!absl::SimpleAtod(text, value)) return BadValue(path, key, text);
    }
    // Only an evaluation of the weight average has these (checkpoints of older runs or
    // of runs without the average have none).
    if (counters.count("evaluation.average_examples") > 0) {
      ASSIGN_OR_RETURN(evaluation.average_examples, counter("evaluation.average_examples"));
      ASSIGN_OR_RETURN(evaluation.average_correct, counter("evaluation.average_correct"));
      ASSIGN_OR_RETURN(const std::string text, GetKey(checkpoint, path, "evaluation.average_loss"));
      if (!absl::SimpleAtod(text, &evaluation.average_loss)) {
        return BadValue(path, "evaluation.average_loss", text);
      }
    }
    ledger.evaluation = evaluation;
  }
  return ledger;
}

namespace {

// Copies every entry of `checkpoint` naming a tensor of `layout` (with `suffix`, e.g.
// "/ExponentialMovingAverage", after the tensor's name) into `buffer`, marking the
// elements covered.
void Scatter(const Checkpoint& checkpoint, const ParameterLayout& layout, absl::string_view suffix,
             std::vector<float>& buffer, std::vector<bool>& covered) {
  for (const CheckpointTensor& t : checkpoint.tensors) {
    std::string name = t.name;
    int64_t begin = 0;
    const size_t at = name.rfind(kSliceSeparator);
    if (at != std::string::npos) {
      std::vector<std::string> range = absl::StrSplit(name.substr(at + 1), ':');
      if (range.size() != 2 || !absl::SimpleAtoi(range[0], &begin)) continue;
      name = name.substr(0, at);
    }
    absl::string_view base = name;
    if (!absl::ConsumeSuffix(&base, suffix)) continue;
    auto view = layout.Find(base);
    if (!view.ok()) continue;  // an optimizer slot or another layout's tensor
    const int64_t n = static_cast<int64_t>(t.data.size());
    if (begin < 0 || begin + n > (*view)->size) continue;
    std::copy(t.data.begin(), t.data.end(), buffer.begin() + (*view)->offset + begin);
    std::fill(covered.begin() + (*view)->offset + begin,
              covered.begin() + (*view)->offset + begin + n, true);
  }
}

absl::Status CheckCovered(const ParameterLayout& layout, const std::vector<bool>& covered,
                          const std::string& where) {
  for (const TensorView& v : layout.views()) {
    for (int64_t i = 0; i < v.size; ++i) {
      if (!covered[v.offset + i]) {
        return absl::NotFoundError(absl::StrCat(where, ": no checkpoint holds element ", i,
                                                " of tensor \"", v.name, "\" (", v.size,
                                                " elements)"));
      }
    }
  }
  return absl::OkStatus();
}

// The newest valid checkpoint of every series ("<prefix>-<step>.mnck") in `dir`.
absl::StatusOr<std::vector<RestoredCheckpoint>> LatestOfEverySeries(const std::string& dir) {
  std::set<std::string> prefixes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !absl::EndsWith(name, kCheckpointExtension)) continue;
    const size_t dash = name.rfind('-');
    if (dash == std::string::npos || dash == 0) continue;
    prefixes.insert(name.substr(0, dash));
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir, ": ", ec.message()));
  if (prefixes.empty()) {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no checkpoint files (<prefix>-<step>", kCheckpointExtension, ")"));
  }
  std::vector<RestoredCheckpoint> out;
  for (const std::string& prefix : prefixes) {
    CheckpointSeries series(dir, prefix, /*keep_last=*/0);
    ASSIGN_OR_RETURN(RestoredCheckpoint restored, series.RestoreLatest());
    out.push_back(std::move(restored));
  }
  return out;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, WeightsKind weights) {
  std::vector<std::pair<std::string, Checkpoint>> files;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": no such checkpoint file or directory"));
  }
  if (S_ISDIR(st.st_mode)) {
    ASSIGN_OR_RETURN(std::vector<RestoredCheckpoint> restored, LatestOfEverySeries(path));
    for (RestoredCheckpoint& r : restored) files.emplace_back(r.path, std::move(r.checkpoint));
  } else {
    ASSIGN_OR_RETURN(Checkpoint c, ReadCheckpoint(path));
    files.emplace_back(path, std::move(c));
  }

  LoadedModel model;
  ASSIGN_OR_RETURN(model.config, GetModelConfig(files[0].second, files[0].first));
  for (size_t i = 1; i < files.size(); ++i) {
    ASSIGN_OR_RETURN(MobileNetConfig other, GetModelConfig(files[i].second, files[i].first));
    if (other.alpha != model.config.alpha || other.resolution != model.config.resolution ||
        other.input_channels != model.config.input_channels ||
        other.num_classes != model.config.num_classes || other.shallow != model.config.shallow) {
      return absl::FailedPreconditionError(absl::StrCat(
          files[i].first, ": model configuration differs from ", files[0].first));
    }
  }
  ASSIGN_OR_RETURN(Architecture arch, BuildArchitecture(model.config));
  const ParameterLayout params = BuildParameterLayout(arch);
  const ParameterLayout state = BuildStateLayout(arch);
  model.parameters.assign(params.total_size(), 0.0f);
  model.state.assign(state.total_size(), 0.0f);
  std::vector<bool> params_covered(params.total_size(), false);
  std::vector<bool> state_covered(state.total_size(), false);
  model.global_step = -1;
  const std::string suffix =
      weights == WeightsKind::kAverage ? absl::StrCat("/", kWeightAverageSlot) : "";
  for (const auto& [file, checkpoint] : files) {
    Scatter(checkpoint, params, suffix, model.parameters, params_covered);
    Scatter(checkpoint, state, "", model.state, state_covered);
    ASSIGN_OR_RETURN(std::vector<std::string> names,
                     GetClassNames(checkpoint, file, model.config.num_classes));
    if (!names.empty() && !model.class_names.empty() && names != model.class_names) {
      return absl::FailedPreconditionError(
          absl::StrCat(file, ": class names ", DescribeClassNames(names), " differ from ",
                       DescribeClassNames(model.class_names), " of another file"));
    }
    if (!names.empty()) model.class_names = std::move(names);
    auto it = checkpoint.counters.find("version");
    const int64_t version = it == checkpoint.counters.end() ? 0 : it->second;
    model.global_step = model.global_step < 0 ? version : std::min(model.global_step, version);
    model.files.push_back(file);
  }
  if (weights == WeightsKind::kAverage &&
      std::find(params_covered.begin(), params_covered.end(), true) == params_covered.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": holds no weight average (\"<tensor>/", kWeightAverageSlot,
                     "\" tensors); it was written with --weight_ema_decay=0. Use --weights=raw"));
  }
  RETURN_IF_ERROR(CheckCovered(params, params_covered, path));
  RETURN_IF_ERROR(CheckCovered(state, state_covered, path));
  return model;
}

ShardCheckpointCodec ModelShardCheckpointCodec(const MobileNetConfig& model,
                                               const ShardingPlan& plan,
                                               const std::string& optimizer_name,
                                               int task_index) {
  const std::string task = absl::StrCat(task_index, "/", plan.num_shards());
  ShardCheckpointCodec codec;
  codec.encode = [model, optimizer_name, task, plan](const CoreState& state) {
    Checkpoint c = ShardStateToCheckpoint(state.shard, model, plan.parameter_layout(),
                                          plan.state_layout());
    PutLedger(state.ledger, &c);
    c.metadata["optimizer"] = optimizer_name;
    c.metadata["ps_task"] = task;
    c.metadata["plan_fingerprint"] = FormatFingerprint(plan.fingerprint());
    return c;
  };
  codec.decode = [model](const Checkpoint& c,
                         const std::string& path) -> absl::StatusOr<CoreState> {
    ASSIGN_OR_RETURN(MobileNetConfig saved, GetModelConfig(c, path));
    if (ModelConfigString(saved) != ModelConfigString(model)) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": checkpoint of model ", ModelConfigString(saved), ", the flags ask for ",
          ModelConfigString(model), "; use another --checkpoint_dir"));
    }
    CoreState state;
    absl::StatusOr<ShardState> shard = CheckpointToShardState(c);
    if (!shard.ok()) {
      return absl::Status(shard.status().code(), absl::StrCat(path, ": ", shard.status().message()));
    }
    state.shard = *std::move(shard);
    ASSIGN_OR_RETURN(state.ledger,
                     GetLedger(c, path, state.shard.version, state.shard.examples_seen));
    RETURN_IF_ERROR(GetClassNames(c, path, model.num_classes).status());
    return state;
  };
  return codec;
}

}  // namespace mobilenet
