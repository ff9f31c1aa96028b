// Global average pooling: [N, H, W, C] -> [N, C].
#ifndef MOBILENET_MODEL_LAYERS_GLOBAL_AVG_POOL_H_
#define MOBILENET_MODEL_LAYERS_GLOBAL_AVG_POOL_H_

namespace mobilenet {

// output [N, C] overwritten.
void GlobalAvgPoolForward(int n, int h, int w, int c, const float* input, float* output);

// d_input [N, H, W, C] overwritten with d_output / (H * W) broadcast.
void GlobalAvgPoolBackward(int n, int h, int w, int c, const float* d_output, float* d_input);

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_GLOBAL_AVG_POOL_H_
