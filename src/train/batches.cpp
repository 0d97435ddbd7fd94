#include "train/batches.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "kernels/op_types.h"  // kIgnoreIndex

namespace difftx {

namespace {

// One row under construction: the samples placed in it.
using Row = std::vector<const Sample*>;

MicroBatch build(const std::vector<Row>& rows, int64_t width, int32_t pad_id, bool packed) {
  MicroBatch mb;
  TokenBatch& t = mb.tokens;
  t.batch = static_cast<int64_t>(rows.size());
  t.seq_len = width;
  const size_t n = static_cast<size_t>(t.batch * width);
  t.ids.assign(n, pad_id);
  t.attention_mask.assign(n, 0);
  t.position_ids.assign(n, 0);
  t.segment_ids.assign(n, 0);
  mb.targets.assign(n, kIgnoreIndex);
  for (size_t r = 0; r < rows.size(); ++r) {
    int64_t at = 0;
    int32_t segment = 0;
    for (const Sample* s : rows[r]) {
      ++segment;
      ++mb.samples;
      for (size_t i = 0; i < s->ids.size(); ++i, ++at) {
        const size_t k = r * static_cast<size_t>(width) + static_cast<size_t>(at);
        t.ids[k] = s->ids[i];
        t.attention_mask[k] = 1;
        t.position_ids[k] = static_cast<int64_t>(i);
        t.segment_ids[k] = packed ? segment : 1;
        if (i + 1 < s->ids.size() && s->labels[i + 1] != kIgnoreIndex) {
          mb.targets[k] = s->labels[i + 1];
          ++mb.target_count;
        }
      }
    }
  }
  return mb;
}

}  // namespace

std::vector<MicroBatch> make_micro_batches(const std::vector<Sample>& samples, const TrainConfig& c, uint64_t epoch,
                                           int32_t pad_id, bool shuffle) {
  std::vector<int64_t> order(samples.size());
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    std::mt19937_64 rng(c.seed + epoch * 0x9e3779b97f4a7c15ull);
    std::shuffle(order.begin(), order.end(), rng);
  }
  // Rows: one sample each, or packed next-fit in this order.
  std::vector<Row> rows;
  int64_t used = 0;
  for (int64_t i : order) {
    const Sample* s = &samples[static_cast<size_t>(i)];
    const int64_t len = static_cast<int64_t>(s->ids.size());
    if (!c.sample_packing || rows.empty() || used + len > c.sequence_len) {
      rows.push_back({});
      used = 0;
    }
    rows.back().push_back(s);
    used += len;
  }
  std::vector<MicroBatch> out;
  for (size_t r0 = 0; r0 < rows.size(); r0 += static_cast<size_t>(c.micro_batch_size)) {
    std::vector<Row> group(rows.begin() + r0, rows.begin() + std::min(rows.size(), r0 + c.micro_batch_size));
    int64_t width = 0;
    for (const Row& row : group) {
      int64_t len = 0;
      for (const Sample* s : row) len += static_cast<int64_t>(s->ids.size());
      width = std::max(width, len);
    }
    if (c.pad_to_sequence_len) width = c.sequence_len;
    out.push_back(build(group, width, pad_id, c.sample_packing));
  }
  return out;
}

}  // namespace difftx
