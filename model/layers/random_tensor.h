// Test utility: reproducible random tensors for the layer tests. Header-only.
#ifndef MOBILENET_MODEL_LAYERS_RANDOM_TENSOR_H_
#define MOBILENET_MODEL_LAYERS_RANDOM_TENSOR_H_

#include <cstdint>
#include <random>
#include <vector>

namespace mobilenet {

// `size` values uniform in [low, high), the same for the same `seed`.
inline std::vector<float> RandomTensor(int64_t size, uint32_t seed, float low = -1.0f,
                                       float high = 1.0f) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(size);
  for (float& v : values) v = uniform(engine);
  return values;
}

// Sum of a[i] * b[i] in double: the scalar loss the gradient checks differentiate.
inline double WeightedSum(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += double{a[i]} * b[i];
  return sum;
}

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_RANDOM_TENSOR_H_
