// The collective operations data-parallel training needs, behind one small interface: one process
// (every call leaves its data as it is), MPI between processes (train/mpi_collective.h), and NCCL
// between GPUs, plug in here without touching the training step.
//
// Every sum is deterministic: the same inputs give the same bits on every rank and on every run,
// whatever the transport does inside (an implementation adds the ranks' contributions in rank order
// 0, 1, ..., world_size - 1 itself rather than leaving the order to the library).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace difftx {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;        // 0 .. world_size() - 1
  virtual int world_size() const = 0;
  // Element-wise sums over all ranks, in place, identical on every rank afterwards.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  virtual void all_reduce_sum(std::span<int64_t> data) = 0;
  // The same float sum, started in the background (gradient buckets while the backward pass goes
  // on): `data` must stay untouched until wait() returns. progress() advances the started sums
  // without blocking (called between layers); wait() completes all of them. One process: nothing.
  virtual void start_all_reduce_sum(std::span<float> data) { all_reduce_sum(data); }
  // ZeRO-1's halves of that sum (started the same way, complete after wait()). Reduce-scatter:
  // afterwards this rank's shard of `data` (shard_of below) holds the sum over the ranks, the rest
  // is unspecified. All-gather: each rank's shard is in place; afterwards every rank has them all.
  // Gather to root: rank 0's `whole` (data.size() == n there, empty elsewhere) receives every
  // rank's `shard` of an n-element span.
  virtual void start_reduce_scatter_sum(std::span<float>) {}
  virtual void start_all_gather(std::span<float>) {}
  virtual void start_gather_to_root(std::span<const float> shard, std::span<float> whole, size_t n) {
    std::copy(shard.begin(), shard.end(), whole.begin());
  }
  virtual void progress() {}
  virtual void wait() {}
  // Seconds spent inside the collective calls so far, and the part of it the caller waited for
  // (blocking calls and wait(); the rest overlapped with computation).
  virtual double seconds_total() const { return 0; }
  virtual double seconds_waited() const { return 0; }
};

// The shard of an n-element span that rank `rank` of `world` sums and owns: [n r / w, n (r + 1) / w).
inline std::pair<size_t, size_t> shard_of(size_t n, int rank, int world) {
  return {n * static_cast<size_t>(rank) / static_cast<size_t>(world),
          n * static_cast<size_t>(rank + 1) / static_cast<size_t>(world)};
}

// One process: rank 0 of 1; the sums are the data itself.
class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(std::span<float>) override {}
  void all_reduce_sum(std::span<double>) override {}
  void all_reduce_sum(std::span<int64_t>) override {}
};

}  // namespace difftx
