// The collective operations data-parallel training needs, behind one small interface: one process
// today (every call leaves its data as it is); MPI between processes, and NCCL between GPUs, plug
// in here without touching the training step.
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
