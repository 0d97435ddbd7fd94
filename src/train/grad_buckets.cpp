#include "train/grad_buckets.h"

#include "train/collective.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>

namespace difftx {

namespace {

// The layer of "model.layers.<l>.…", or -1.
int64_t layer_of(std::string_view name) {
  constexpr std::string_view prefix = "model.layers.";
  if (!name.starts_with(prefix)) return -1;
  name.remove_prefix(prefix.size());
  int64_t l = -1;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), l);
  return ec == std::errc() && end < name.data() + name.size() && *end == '.' ? l : -1;
}

void cut(FloatRange r, std::vector<FloatRange>& out) {
  for (uint64_t b = r.begin; b < r.end; b += kMaxBucketFloats) out.push_back({b, std::min(r.end, b + kMaxBucketFloats)});
}

}  // namespace

std::vector<FloatRange> GradBuckets::in_order() const {
  std::vector<FloatRange> all;
  for (auto l = layers.rbegin(); l != layers.rend(); ++l) all.insert(all.end(), l->begin(), l->end());
  all.insert(all.end(), rest.begin(), rest.end());
  return all;
}

std::vector<FloatRange> owned_shards(const GradBuckets& buckets, int rank, int world) {
  std::vector<FloatRange> owned;
  for (const FloatRange& piece : buckets.in_order()) {
    const auto [begin, end] = shard_of(piece.end - piece.begin, rank, world);
    if (begin < end) owned.push_back({piece.begin + begin, piece.begin + end});
  }
  return owned;
}

GradBuckets grad_buckets(const ParamTable& table, int64_t num_layers) {
  GradBuckets b;
  const uint64_t size = table.buffer_floats();
  std::vector<FloatRange> layers(static_cast<size_t>(num_layers),
                                 FloatRange{std::numeric_limits<uint64_t>::max(), 0});
  for (const ParamSpec& p : table.params()) {
    const int64_t l = layer_of(p.name);
    if (l < 0 || l >= num_layers) continue;
    FloatRange& r = layers[static_cast<size_t>(l)];
    r.begin = std::min(r.begin, p.offset);
    r.end = std::max(r.end, p.offset + p.numel);
  }
  bool contiguous = true;
  for (const ParamSpec& p : table.params()) {  // no other tensor inside a layer's range
    const int64_t l = layer_of(p.name);
    for (int64_t k = 0; k < num_layers && contiguous; ++k) {
      const FloatRange& r = layers[static_cast<size_t>(k)];
      if (k != l && p.offset < r.end && p.offset + p.numel > r.begin) contiguous = false;
    }
  }
  for (const FloatRange& r : layers) contiguous = contiguous && r.begin < r.end;
  if (!contiguous) {
    cut({0, size}, b.rest);
    return b;
  }
  for (const FloatRange& r : layers) cut(r, b.layers.emplace_back());
  std::vector<FloatRange> sorted = layers;
  std::sort(sorted.begin(), sorted.end(), [](const FloatRange& a, const FloatRange& c) { return a.begin < c.begin; });
  uint64_t at = 0;
  for (const FloatRange& r : sorted) {
    if (r.begin > at) cut({at, r.begin}, b.rest);
    at = std::max(at, r.end);
  }
  if (at < size) cut({at, size}, b.rest);
  return b;
}

}  // namespace difftx
