// The gradient buckets of data-parallel training (PyTorch DDP's idea, cut at layer boundaries):
// decoder layer l's parameters are contiguous in the parameter table, so their gradients form one
// range that is complete, and can be summed over the ranks, as soon as the backward pass has left
// layer l, while the layers below are still computing. What no layer owns (embedding, final norm,
// lm_head, alignment padding) is complete only at the end of the backward pass.
#pragma once

#include <cstdint>
#include <vector>

#include "model/params.h"

namespace difftx {

struct FloatRange {
  uint64_t begin = 0, end = 0;  // [begin, end) in floats of the parameter buffer
};

struct GradBuckets {
  std::vector<FloatRange> layers;  // by layer index; empty when some layer's tensors are not contiguous
  std::vector<FloatRange> rest;    // the buffer outside the layers' ranges, in order
};

// From the tensor names (model.layers.<l>.*). When a layer's tensors are interleaved with another's,
// `layers` is empty and `rest` is the whole buffer (one sum after the backward pass).
GradBuckets grad_buckets(const ParamTable& table, int64_t num_layers);

}  // namespace difftx
