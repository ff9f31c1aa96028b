// Test utility for the DISABLED_ micro-benchmarks in the layer tests. Header-only.
#ifndef MOBILENET_MODEL_LAYERS_LAYER_BENCHMARK_H_
#define MOBILENET_MODEL_LAYERS_LAYER_BENCHMARK_H_

#include <algorithm>
#include <chrono>
#include <functional>

namespace mobilenet {

// Runs `body` once to warm up, then `repeats` times; returns the fastest run in ms.
inline double BestMilliseconds(int repeats, const std::function<void()>& body) {
  body();
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    body();
    const std::chrono::duration<double, std::milli> elapsed =
        std::chrono::steady_clock::now() - start;
    best = std::min(best, elapsed.count());
  }
  return best;
}

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_LAYER_BENCHMARK_H_
