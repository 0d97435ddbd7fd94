// SwiGLU gate of the Llama MLP (spec §1): out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
#pragma once

#include <cstdint>

namespace difftx {

// gate, up, out: n floats each; out may alias gate or up.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

// Backward, accumulating: dgate += dout * up * silu'(gate), dup += dout * silu(gate), with
// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g).
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

}  // namespace difftx
