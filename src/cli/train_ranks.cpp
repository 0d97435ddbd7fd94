#include "cli/train_ranks.h"

#include <omp.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "train/rank_agreement.h"
#include "train/trainer.h"

namespace difftx::cli {

namespace {

int cores_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
}

}  // namespace

std::unique_ptr<MpiCollective> start_ranks(bool threads_given) {
  if (!mpi_launch_from_env()) return nullptr;
  auto ranks = std::make_unique<MpiCollective>();
  if (ranks->world_size() == 1) return nullptr;  // destroyed: MPI finalised, one process as usual
  if (ranks->rank() != 0 && spdlog::get_level() < spdlog::level::err) spdlog::set_level(spdlog::level::err);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int local = std::max(1, ranks->local_size());
  int threads = omp_get_max_threads();
  if (!threads_given) {
    threads = std::max(1, cores / local);
    set_threads(threads);
  }
  spdlog::info("{} ranks ({} on this machine) x {} thread{}", ranks->world_size(), local, threads, threads == 1 ? "" : "s");
  if (local * threads > cores)
    spdlog::warn("{} ranks x {} threads on this machine exceed its {} cores: the ranks slow each other down "
                 "(--threads sets each rank's threads)",
                 local, threads, cores);
  if (const int allowed = cores_allowed(); allowed > 0 && allowed < threads)
    spdlog::warn("the launcher bound each rank to {} core{} for {} threads; give each rank its cores (Open MPI: "
                 "mpirun --map-by slot:PE={} or --bind-to none)",
                 allowed, allowed == 1 ? "" : "s", threads, threads);
  return ranks;
}

int end_rank(MpiCollective* ranks, std::exception_ptr error) {
  if (ranks == nullptr) std::rethrow_exception(error);
  const bool lead = ranks->rank() == 0;
  try {
    std::rethrow_exception(error);
  } catch (const RanksAgreeError&) {
    if (lead) throw;
    return 2;
  } catch (const RanksAgreeNumericError&) {
    if (lead) throw;
    return 2;
  } catch (const TrainingError&) {
    if (lead) throw;
    return 2;
  } catch (const Interrupted& e) {
    if (lead) throw;
    return 128 + e.signal();
  } catch (const std::exception& e) {  // the other ranks may be waiting in a sum for this one
    const bool input = dynamic_cast<const Error*>(&e) != nullptr ||
                       dynamic_cast<const std::filesystem::filesystem_error*>(&e) != nullptr;
    std::fprintf(stderr, "error: rank %d of %d: %s\n", ranks->rank(), ranks->world_size(), e.what());
    ranks->abort(input ? 2 : 1);
  }
}

}  // namespace difftx::cli
