#include "parameter_server/core/sharding_plan.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "model/mobilenet_v1.h"

namespace mobilenet {
namespace {

constexpr int kMaxShards = 1024;
// Pieces are at most this percentage of the mean load per server (see the header).
constexpr int64_t kMaxSlicePercentOfMean = 4;

// A range of one tensor waiting to be placed.
struct Piece {
  bool is_state = false;  // of the state layout (else the parameter layout)
  size_t tensor = 0;      // index in its layout's views()
  int64_t begin = 0;
  int64_t end = 0;

  int64_t size() const { return end - begin; }
};

// Every tensor of `layout`, split into near-equal pieces of at most `max_size` floats.
void AppendPieces(const ParameterLayout& layout, bool is_state, int64_t max_size,
                  std::vector<Piece>& pieces) {
  for (size_t t = 0; t < layout.views().size(); ++t) {
    const int64_t size = layout.views()[t].size;
    if (size == 0) continue;
    const int64_t count = (size + max_size - 1) / max_size;
    for (int64_t i = 0; i < count; ++i) {
      pieces.push_back({is_state, t, size * i / count, size * (i + 1) / count});
    }
  }
}

// The slices of `pieces` (one layout's, of one server) in layout order, adjacent ranges of
// the same tensor merged.
std::vector<TensorSlice> ToSlices(const ParameterLayout& layout, std::vector<Piece> pieces) {
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) {
    return std::tie(a.tensor, a.begin) < std::tie(b.tensor, b.begin);
  });
  std::vector<TensorSlice> slices;
  size_t last_tensor = 0;
  for (const Piece& piece : pieces) {
    if (!slices.empty() && piece.tensor == last_tensor && slices.back().end == piece.begin) {
      slices.back().end = piece.end;
      continue;
    }
    slices.push_back({layout.views()[piece.tensor].name, piece.begin, piece.end});
    last_tensor = piece.tensor;
  }
  return slices;
}

uint64_t Fnv1a64(absl::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

// The text the fingerprint hashes: everything that must agree between processes.
std::string CanonicalText(const ParameterLayout& parameters, const ParameterLayout& state,
                          absl::string_view model, const std::vector<ShardSpec>& shards) {
  std::string text = absl::StrCat("mobilenet.sharding_plan.v1\nmodel ", model, "\nshards ",
                                  shards.size(), "\n");
  for (const ParameterLayout* layout : {&parameters, &state}) {
    for (const TensorView& view : layout->views()) {
      absl::StrAppend(&text, layout == &parameters ? "parameter " : "state ", view.name, " [",
                      absl::StrJoin(view.shape, ","), "]\n");
    }
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    absl::StrAppend(&text, "shard ", i, "\n");
    for (const TensorSlice& slice : shards[i].parameters) {
      absl::StrAppend(&text, " parameter ", slice.tensor, " ", slice.begin, " ", slice.end, "\n");
    }
    for (const TensorSlice& slice : shards[i].state) {
      absl::StrAppend(&text, " state ", slice.tensor, " ", slice.begin, " ", slice.end, "\n");
    }
  }
  return text;
}

}  // namespace

std::string ModelConfigString(const MobileNetConfig& config) {
  return absl::StrFormat("alpha=%g resolution=%d channels=%d classes=%d%s", config.alpha,
                         config.resolution, config.input_channels, config.num_classes,
                         config.shallow ? " shallow" : "");
}

absl::StatusOr<MobileNetConfig> ParseModelConfigString(absl::string_view text) {
  const auto invalid = [text]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "model \"", text,
        "\": expected \"alpha=A resolution=R channels=C classes=K\" (optionally \" shallow\")"));
  };
  std::vector<absl::string_view> words = absl::StrSplit(text, ' ', absl::SkipEmpty());
  MobileNetConfig config;
  if (!words.empty() && words.back() == "shallow") {
    config.shallow = true;
    words.pop_back();
  }
  if (words.size() != 4) return invalid();
  const char* keys[] = {"alpha=", "resolution=", "channels=", "classes="};
  for (int i = 0; i < 4; ++i) {
    if (!absl::ConsumePrefix(&words[i], keys[i])) return invalid();
  }
  if (!absl::SimpleAtof(words[0], &config.alpha) ||
      !absl::SimpleAtoi(words[1], &config.resolution) ||
      !absl::SimpleAtoi(words[2], &config.input_channels) ||
      !absl::SimpleAtoi(words[3], &config.num_classes)) {
    return invalid();
  }
  return config;
}

std::string FormatFingerprint(uint64_t fingerprint) {
  return absl::StrFormat("%016x", fingerprint);
}

absl::StatusOr<ShardingPlan> ShardingPlan::Create(const MobileNetConfig& config, int num_shards) {
  ASSIGN_OR_RETURN(const Architecture arch, BuildArchitecture(config));
  return CreateForLayouts(BuildParameterLayout(arch), BuildStateLayout(arch), num_shards,
                          ModelConfigString(config));
}

absl::StatusOr<ShardingPlan> ShardingPlan::CreateForLayouts(const ParameterLayout& parameters,
                                                            const ParameterLayout& state,
                                                            int num_shards, std::string model) {
  if (num_shards < 1 || num_shards > kMaxShards) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "number of parameter servers is %d, expected 1 to %d", num_shards, kMaxShards));
  }
  if (parameters.total_size() == 0) {
    return absl::InvalidArgumentError("the parameter layout holds no tensor to shard");
  }
  ShardingPlan plan;
  plan.parameters_ = parameters;
  plan.state_ = state;
  plan.model_ = std::move(model);

  const int64_t total = parameters.total_size() + state.total_size();
  // One server holds whole tensors; otherwise pieces are small enough to balance.
  plan.max_slice_floats_ =
      num_shards == 1 ? total
                      : std::max<int64_t>(1, total * kMaxSlicePercentOfMean / (100 * num_shards));
  std::vector<Piece> pieces;
  AppendPieces(parameters, /*is_state=*/false, plan.max_slice_floats_, pieces);
  AppendPieces(state, /*is_state=*/true, plan.max_slice_floats_, pieces);
  // Largest first; ties in layout order, so every process places identically.
  std::stable_sort(pieces.begin(), pieces.end(),
                   [](const Piece& a, const Piece& b) { return a.size() > b.size(); });

  std::vector<int64_t> load(num_shards, 0);
  std::vector<std::vector<Piece>> parameter_pieces(num_shards), state_pieces(num_shards);
  for (const Piece& piece : pieces) {
    const int target =
        static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[target] += piece.size();
    (piece.is_state ? state_pieces : parameter_pieces)[target].push_back(piece);
  }
  for (int i = 0; i < num_shards; ++i) {
    ShardSpec spec;
    spec.parameters = ToSlices(parameters, std::move(parameter_pieces[i]));
    spec.state = ToSlices(state, std::move(state_pieces[i]));
    plan.shards_.push_back(std::move(spec));
    plan.shard_bytes_.push_back(load[i] * static_cast<int64_t>(sizeof(float)));
  }
  plan.fingerprint_ = Fnv1a64(CanonicalText(parameters, state, plan.model_, plan.shards_));
  return plan;
}

const ShardSpec& ShardingPlan::shard(int index) const {
  MOBILENET_CHECK(index >= 0 && index < num_shards());
  return shards_[index];
}

int64_t ShardingPlan::shard_bytes(int index) const {
  MOBILENET_CHECK(index >= 0 && index < num_shards());
  return shard_bytes_[index];
}

}  // namespace mobilenet
