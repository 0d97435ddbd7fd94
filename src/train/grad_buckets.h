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

// Ranges are cut into pieces of at most kMaxBucketFloats (MPI counts are int; 256 MB each).
inline constexpr uint64_t kMaxBucketFloats = uint64_t{1} << 26;

struct GradBuckets {
  std::vector<std::vector<FloatRange>> layers;  // by layer index; empty when some layer's tensors are not contiguous
  std::vector<FloatRange> rest;                 // the buffer outside the layers' ranges, in order
  // Every piece in the order a step starts their sums: layers last to first, then the rest.
  std::vector<FloatRange> in_order() const;
};

// From the tensor names (model.layers.<l>.*). When a layer's tensors are interleaved with another's,
// `layers` is empty and `rest` is the whole buffer (summed after the backward pass).
GradBuckets grad_buckets(const ParamTable& table, int64_t num_layers);

// ZeRO-1: what rank `rank` of `world` owns, piece by piece in in_order() (collective.h's shard_of
// of each piece): its reduce-scatter results, its AdamW moments, its share of the all-gather.
std::vector<FloatRange> owned_shards(const GradBuckets& buckets, int rank, int world);

}  // namespace difftx
