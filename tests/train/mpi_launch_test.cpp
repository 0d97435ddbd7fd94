// Which launcher started this process, read from the environment before MPI starts
// (train/mpi_collective.h: mpi_launch_from_env): Open MPI's mpirun, MPICH/Hydra, Slurm's srun,
// a PMIx launcher, or none. The test sets each launcher's variables itself (srun is not installed
// here, so this is what checks the Slurm path).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "train/mpi_collective.h"

namespace difftx {
namespace {

const char* kNames[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_SIZE",
                        "PMI_RANK", "MPI_LOCALNRANKS", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_NTASKS_PER_NODE",
                        "SLURM_STEP_ID", "PMIX_RANK"};

// Clears every launcher variable for the test and puts the process's own back afterwards.
class MpiLaunchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* n : kNames) {
      if (const char* v = std::getenv(n)) saved_[n] = v;
      unsetenv(n);
    }
  }
  void TearDown() override {
    for (const char* n : kNames) unsetenv(n);
    for (const auto& [n, v] : saved_) setenv(n.c_str(), v.c_str(), 1);
  }
  static void set(const std::map<std::string, std::string>& vars) {
    for (const auto& [n, v] : vars) setenv(n.c_str(), v.c_str(), 1);
  }
  std::map<std::string, std::string> saved_;
};

// The launch read from the environment now, against its expected world size, rank and local size.
void expect_launch(int world_size, int rank, int local_size) {
  const std::optional<MpiLaunch> l = mpi_launch_from_env();
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->world_size, world_size);
  EXPECT_EQ(l->rank, rank);
  EXPECT_EQ(l->local_size, local_size);
}

TEST_F(MpiLaunchTest, AloneOrOneProcessIsNoLaunch) {
  EXPECT_FALSE(mpi_launch_from_env().has_value());
  set({{"OMPI_COMM_WORLD_SIZE", "1"}, {"OMPI_COMM_WORLD_RANK", "0"}});
  EXPECT_FALSE(mpi_launch_from_env().has_value()) << "mpirun -np 1 runs as one process";
}

TEST_F(MpiLaunchTest, OpenMpiAndHydraGiveRankSizeAndLocalSize) {
  set({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  expect_launch(4, 3, 2);
  for (const char* n : kNames) unsetenv(n);
  set({{"PMI_SIZE", "3"}, {"PMI_RANK", "1"}, {"MPI_LOCALNRANKS", "3"}});
  expect_launch(3, 1, 3);
}

TEST_F(MpiLaunchTest, SlurmCountsOnlyInsideAJobStep) {
  // An salloc / sbatch shell has SLURM_NTASKS but no step: difftx started there runs alone.
  set({{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS_PER_NODE", "4"}});
  EXPECT_FALSE(mpi_launch_from_env().has_value());
  // srun: a step; the per-node count in Slurm's compressed form "4(x2)" (4 tasks on each of 2 nodes).
  set({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS_PER_NODE", "4(x2)"}});
  expect_launch(8, 5, 4);
  set({{"SLURM_NTASKS_PER_NODE", "many"}});  // not a count: unknown (0), found once MPI starts
  expect_launch(8, 5, 0);
}

TEST_F(MpiLaunchTest, PmixRankAloneLeavesTheSizeToMpi) {
  set({{"PMIX_RANK", "2"}});
  const std::optional<MpiLaunch> l = mpi_launch_from_env();
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->rank, 2);
  EXPECT_EQ(l->world_size, 0) << "known once MPI has started";
}

}  // namespace
}  // namespace difftx
