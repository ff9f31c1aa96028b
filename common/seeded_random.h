// A small deterministic random generator for the data pipeline. Unlike std::shuffle and
// std::uniform_int_distribution, its output is fixed by the seed alone, independent of
// the standard library, so every worker on every machine draws the same sequence.
#ifndef MOBILENET_COMMON_SEEDED_RANDOM_H_
#define MOBILENET_COMMON_SEEDED_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace mobilenet {

// SplitMix64 (Steele, Lea, Flood 2014). Not thread-safe; cheap to copy and to create.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n); n >= 1. The bias of the multiply-shift reduction is below n / 2^64.
  uint64_t Uniform(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

  // Uniform in [0, 1) with 24 random bits.
  float UniformFloat() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }

  bool Bernoulli() { return (Next() >> 63) != 0; }

 private:
  uint64_t state_;
};

// Derives an independent seed from a seed and a value (e.g. an epoch or an example index).
inline uint64_t MixSeed(uint64_t seed, uint64_t value) {
  SplitMix64 rng(seed ^ (value * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL));
  rng.Next();
  return rng.Next();
}

// Fisher-Yates shuffle of `values` in place.
template <typename T>
void Shuffle(std::vector<T>* values, SplitMix64* rng) {
  for (size_t i = values->size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng->Uniform(i));
    std::swap((*values)[i - 1], (*values)[j]);
  }
}

}  // namespace mobilenet

#endif  // MOBILENET_COMMON_SEEDED_RANDOM_H_
