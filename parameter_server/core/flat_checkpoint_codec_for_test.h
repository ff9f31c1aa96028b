// Tests only: a ShardCheckpointCodec for arbitrary layouts (not only MobileNet's, which
// model_checkpoint.h's codec needs) that stores every entry of a shard's state flat as
// "<name>@<begin>:<end>", the ledger as model_checkpoint.h does, and the model named in
// the metadata.
#ifndef MOBILENET_PARAMETER_SERVER_CORE_FLAT_CHECKPOINT_CODEC_FOR_TEST_H_
#define MOBILENET_PARAMETER_SERVER_CORE_FLAT_CHECKPOINT_CODEC_FOR_TEST_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "parameter_server/core/model_checkpoint.h"
#include "parameter_server/core/shard_checkpointer.h"

namespace mobilenet {

// Decoding a checkpoint whose metadata "model" is not `model` is FailedPrecondition.
inline ShardCheckpointCodec FlatCheckpointCodecForTest(const std::string& model) {
  ShardCheckpointCodec codec;
  codec.encode = [model](const CoreState& state) {
    Checkpoint c;
    c.metadata["model"] = model;
    c.counters["version"] = state.shard.version;
    c.counters["examples_seen"] = state.shard.examples_seen;
    for (const ShardTensor& t : state.shard.tensors) {
      c.tensors.push_back({absl::StrCat(t.name, "@", t.begin, ":", t.end),
                           {static_cast<int64_t>(t.values.size())}, t.values});
    }
    PutLedger(state.ledger, &c);
    return c;
  };
  codec.decode = [model](const Checkpoint& c,
                         const std::string& path) -> absl::StatusOr<CoreState> {
    auto saved = c.metadata.find("model");
    if (saved == c.metadata.end() || saved->second != model) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": another model"));
    }
    CoreState state;
    state.shard.version = c.counters.at("version");
    state.shard.examples_seen = c.counters.at("examples_seen");
    for (const CheckpointTensor& t : c.tensors) {
      const size_t at = t.name.rfind('@');
      const size_t colon = t.name.rfind(':');
      state.shard.tensors.push_back({t.name.substr(0, at),
                                     std::stoll(t.name.substr(at + 1, colon - at - 1)),
                                     std::stoll(t.name.substr(colon + 1)), t.data});
    }
    absl::StatusOr<LedgerState> ledger =
        GetLedger(c, path, state.shard.version, state.shard.examples_seen);
    if (!ledger.ok()) return ledger.status();
    state.ledger = *std::move(ledger);
    return state;
  };
  return codec;
}

}  // namespace mobilenet

#endif  // MOBILENET_PARAMETER_SERVER_CORE_FLAT_CHECKPOINT_CODEC_FOR_TEST_H_
