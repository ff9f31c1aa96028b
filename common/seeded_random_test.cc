#include "common/seeded_random.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {
namespace {

TEST(SplitMix64Test, MatchesReferenceSequence) {
  // First outputs of the reference implementation (Vigna, splitmix64.c) for seed 0.
  SplitMix64 rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4ULL);
}

TEST(SplitMix64Test, UniformStaysInRangeAndHitsEveryValue) {
  SplitMix64 rng(42);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const uint64_t v = rng.Uniform(7);
    ASSERT_LT(v, 7u);
    ++counts[v];
  }
  for (int c : counts) EXPECT_GT(c, 800);
}

TEST(SplitMix64Test, UniformFloatInUnitInterval) {
  SplitMix64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const float f = rng.UniformFloat();
    ASSERT_GE(f, 0.0f);
    ASSERT_LT(f, 1.0f);
  }
}

TEST(MixSeedTest, DistinctInputsGiveDistinctSeeds) {
  std::set<uint64_t> seeds;
  for (uint64_t s = 0; s < 10; ++s) {
    for (uint64_t v = 0; v < 100; ++v) seeds.insert(MixSeed(s, v));
  }
  EXPECT_EQ(seeds.size(), 1000u);
  EXPECT_EQ(MixSeed(3, 4), MixSeed(3, 4));
}

TEST(ShuffleTest, IsADeterministicPermutation) {
  std::vector<int> a(50), b(50);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 0);
  SplitMix64 rng_a(9), rng_b(9);
  Shuffle(&a, &rng_a);
  Shuffle(&b, &rng_b);
  EXPECT_EQ(a, b);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(a, identity);
}

}  // namespace
}  // namespace mobilenet
