// Data-parallel ranks over MPI (Debian's Open MPI; any MPI-3 library): a process started by
// mpirun / srun is one rank of MPI_COMM_WORLD; a process started alone never touches MPI.
//
// Sums are deterministic (collective.h): MPI moves the data, difftx adds. A float sum is a
// reduce-scatter + all-gather done as two data movements: MPI_Ialltoallv hands rank j the j-th
// shard of every rank's buffer, rank j adds the world_size copies of its shard in rank order
// 0, 1, ..., then MPI_Iallgatherv gives every rank every summed shard. That is the traffic of a
// ring all-reduce (2 (W - 1) / W of the buffer per rank) with an addition order that no MPI
// algorithm choice can change, so the same run gives the same bits. Small sums (< 4096 elements:
// losses, counts) are one MPI_Allgather and the same ordered addition.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/error.h"
#include "train/collective.h"

namespace difftx {

// The launcher's view of this process, from the environment it set before MPI starts (Open MPI:
// OMPI_COMM_WORLD_*; MPICH/Hydra: PMI_RANK, PMI_SIZE, MPI_LOCALNRANKS; PMIx: PMIX_RANK; Slurm:
// SLURM_PROCID, SLURM_NTASKS, SLURM_NTASKS_PER_NODE). nullopt: started alone (no launcher, or a
// launcher that started one process).
struct MpiLaunch {
  int rank = 0, world_size = 1;
  int local_size = 1;  // ranks on this machine (0 when the launcher does not say)
};
std::optional<MpiLaunch> mpi_launch_from_env();

class MpiCollective final : public Collective {
 public:
  // MPI_Init_thread (MPI_THREAD_FUNNELED: the main thread makes every MPI call; OpenMP workers
  // never do). Throws Error when MPI cannot start.
  MpiCollective();
  ~MpiCollective() override;  // completes started sums, then MPI_Finalize
  MpiCollective(const MpiCollective&) = delete;
  MpiCollective& operator=(const MpiCollective&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_size() const { return local_size_; }  // ranks sharing this machine (MPI_COMM_TYPE_SHARED)
  // How many collective operations this rank has started (0: it has not reached the run's first
  // one, check_ranks_agree, where the other ranks may be waiting for it: cli/train_ranks.h).
  int64_t calls() const { return calls_; }
  void all_reduce_sum(std::span<float> data) override;
  void all_reduce_sum(std::span<double> data) override;
  void all_reduce_sum(std::span<int64_t> data) override;
  void start_all_reduce_sum(std::span<float> data) override;
  void start_reduce_scatter_sum(std::span<float> data) override;
  void start_all_gather(std::span<float> data) override;
  void start_gather_to_root(std::span<const float> shard, std::span<float> whole, size_t n) override;
  void progress() override;
  void wait() override;
  double seconds_total() const override { return seconds_total_; }
  double seconds_waited() const override { return seconds_waited_; }
  // Ends every rank at once (MPI_Abort) with exit status `code`, after this rank printed why.
  [[noreturn]] void abort(int code);
  // Waits until every rank has called it (MPI_Barrier): ranks that end a failed run call it after
  // printing, so that none exits (and makes mpirun kill the others) before the report is out.
  void barrier();

 private:
  struct PendingSum;
  template <typename T>
  void small_sum(std::span<T> data, MPI_Datatype type);
  PendingSum& add_pending(std::span<float> data, int phase);
  void start_sum(std::span<float> data, bool scatter_only);
  bool advance(PendingSum& p, bool block);  // true when p is complete
  int rank_ = 0, world_ = 1, local_size_ = 1;
  int64_t calls_ = 0;
  // Each kind of call keeps its own start order: all-to-alls (scatter_comm_), the all-gathers that
  // finish sums (gather_comm_, started in progress()), and all-gathers / gathers the caller starts.
  MPI_Comm scatter_comm_ = MPI_COMM_NULL, gather_comm_ = MPI_COMM_NULL, move_comm_ = MPI_COMM_NULL;
  float* arena(size_t floats);  // a receive buffer, valid until the next wait()
  struct Block {
    std::unique_ptr<float[]> data;
    size_t size = 0;
  };
  std::deque<PendingSum> pending_;  // started sums, oldest first
  std::vector<Block> blocks_;       // the receive buffers' memory, kept for the run
  size_t block_ = 0, block_used_ = 0;
  double seconds_total_ = 0, seconds_waited_ = 0;
};

}  // namespace difftx
