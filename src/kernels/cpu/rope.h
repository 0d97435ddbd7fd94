// Rotary position embedding, "rotate-half" layout of Hugging Face checkpoints (spec §1):
// for i < d/2 the pair (x[i], x[i + d/2]) is rotated by the angle whose cos and sin are given.
#pragma once

#include <cstdint>

namespace difftx {

// x: [rows, n_heads, d], rows x_stride floats apart (x_stride >= n_heads * d), rotated in place.
// cos, sin: [rows, d/2] (already multiplied by any attention factor, e.g. yarn's).
void rope_forward(float* x, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                const float* sin);

// Backward of rope_forward (a rotation, so its transpose rotates back): turns the gradient with
// respect to the rotated x into the gradient with respect to x, in place. With an attention
// factor a (yarn), cos and sin carry it, and the transpose scales by it too, as it should.
void rope_backward(float* dx, int64_t rows, int64_t n_heads, int64_t d, int64_t x_stride, const float* cos,
                   const float* sin);

}  // namespace difftx
