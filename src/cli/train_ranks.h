// `mpirun -np N difftx train`: the data-parallel ranks of a training run (train/mpi_collective.h),
// each with its share of the cores, and how a rank ends a run that fails.
#pragma once

#include <exception>
#include <memory>

#include "train/mpi_collective.h"

namespace difftx::cli {

// MPI when a launcher started several processes, else nullptr (the process trains alone). Without
// --threads, each rank takes cores / (ranks on this machine) threads; warns when ranks x threads
// exceed the cores, or when the launcher bound the rank to fewer cores than its threads.
std::unique_ptr<MpiCollective> start_ranks(bool threads_given);

// The exit status of a rank whose run threw `error`. Alone: rethrown for main() to report.
// - Before the run's first collective operation (reading the config, samples and model): the rank
//   joins check_ranks_agree's sum (share_setup_failure). When every rank failed with the same
//   message (a config path missing everywhere), rank 0 reports it once; otherwise each rank that
//   failed reports its own, with its number, and the others stop quietly. No rank is aborted.
// - Errors every rank detects alike (the ranks' disagreement, a diverged or non-finite loss) are
//   reported by rank 0 and end the other ranks quietly; Ctrl-C is rethrown on rank 0.
// - In these cases every rank waits, after printing, until all have reached MPI_Barrier: mpirun
//   kills the other ranks once one exits with a non-zero status, which could otherwise come before
//   rank 0's report.
// - Any other error is printed with the rank's number and stops every rank at once (MPI_Abort),
//   since the others may be waiting for this one.
int end_rank(MpiCollective* ranks, std::exception_ptr error);

}  // namespace difftx::cli
