#include "model/initializer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mobilenet {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// The splitmix64 finalizer: a bijective 64-bit mix.
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a: a hash of the name that is the same in every process and on every machine.
uint64_t StableNameHash(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// A uniform double in the open interval (0, 1) from 64 random bits.
double ToOpenUnit(uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// A standard normal truncated to [-2, 2] for element `index` of the tensor keyed by
// `tensor_key`. Each element owns a splitmix64 stream seeded from (key, index); Box-Muller
// turns two uniforms into one normal, redrawn until it falls inside two sigma. Nothing
// depends on other elements, so every slice agrees with the whole tensor.
double TruncatedNormal(uint64_t tensor_key, int64_t index) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  uint64_t state = Mix64(tensor_key ^ Mix64(static_cast<uint64_t>(index) + kGolden));
  for (;;) {
    state += kGolden;
    const double u1 = ToOpenUnit(Mix64(state));
    state += kGolden;
    const double u2 = ToOpenUnit(Mix64(state));
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
    if (z >= -2.0 && z <= 2.0) return z;
  }
}

// Standard deviation of a standard normal truncated to [-2, 2]; dividing by it gives the
// truncated distribution the intended variance, as TensorFlow's VarianceScaling does.
constexpr double kTruncatedStddev = 0.87962566103423978;

int64_t FanIn(const TensorView& view) {
  const size_t rank = view.shape.size();
  switch (view.role) {
    case TensorRole::kDepthwiseWeights:
      // [3, 3, C, 1]: each output channel sees kh * kw inputs.
      return rank >= 2 ? view.shape[0] * view.shape[1] : view.size;
    default:
      // [kh, kw, Cin, Cout] or [1, 1, Din, Dout]: everything but the output axis.
      return rank >= 1 ? view.size / view.shape[rank - 1] : view.size;
  }
}

void FillConstant(float value, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = value;
}

}  // namespace

void InitializeRange(const TensorView& view, uint64_t seed, int64_t begin, int64_t end,
                     float* out) {
  if (begin < 0 || end < begin || end > view.size) {
    std::fprintf(stderr, "InitializeRange(%s): range [%lld, %lld) outside [0, %lld)\n",
                 view.name.c_str(), static_cast<long long>(begin),
                 static_cast<long long>(end), static_cast<long long>(view.size));
    std::abort();
  }
  const int64_t count = end - begin;
  switch (view.role) {
    case TensorRole::kBatchNormGamma:
    case TensorRole::kMovingVariance:
      FillConstant(1.0f, count, out);
      return;
    case TensorRole::kBatchNormBeta:
    case TensorRole::kFullyConnectedBias:
    case TensorRole::kMovingMean:
      FillConstant(0.0f, count, out);
      return;
    case TensorRole::kConvWeights:
    case TensorRole::kDepthwiseWeights:
    case TensorRole::kFullyConnectedWeights:
      break;
  }
  const double gain = view.role == TensorRole::kFullyConnectedWeights ? 1.0 : 2.0;
  const double stddev =
      std::sqrt(gain / static_cast<double>(FanIn(view))) / kTruncatedStddev;
  const uint64_t key = Mix64(seed ^ Mix64(StableNameHash(view.name)));
  for (int64_t i = 0; i < count; ++i) {
    out[i] = static_cast<float>(stddev * TruncatedNormal(key, begin + i));
  }
}

void InitializeAll(const ParameterLayout& layout, uint64_t seed, float* buffer) {
  for (const TensorView& view : layout.views()) {
    InitializeRange(view, seed, 0, view.size, buffer + view.offset);
  }
}

}  // namespace mobilenet
