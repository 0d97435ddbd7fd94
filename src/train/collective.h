// The collective operations data-parallel training needs, behind one small interface: one process
// (every call leaves its data as it is), MPI between processes (train/mpi_collective.h), and NCCL
// between GPUs, plug in here without touching the training step.
//
// Every sum is deterministic: the same inputs give the same bits on every rank and on every run,
// whatever the transport does inside (an implementation adds the ranks' contributions in rank order
// 0, 1, ..., world_size - 1 itself rather than leaving the order to the library).
#pragma once

#include <cstdint>
#include <span>

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
  virtual void progress() {}
  virtual void wait() {}
  // Seconds spent inside the collective calls so far, and the part of it the caller waited for
  // (blocking calls and wait(); the rest overlapped with computation).
  virtual double seconds_total() const { return 0; }
  virtual double seconds_waited() const { return 0; }
};

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
