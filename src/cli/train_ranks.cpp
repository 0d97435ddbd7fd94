#include "cli/train_ranks.h"

#include <omp.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>

#include "cli/command.h"
#include "cli/error_report.h"
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
    spdlog::warn("{} ranks x {} thread{} on this machine exceed its {} cores: the ranks slow each other down "
                 "(--threads sets each rank's threads)",
                 local, threads, threads == 1 ? "" : "s", cores);
  if (const int allowed = cores_allowed(); allowed > 0 && allowed < threads)
    spdlog::warn("the launcher bound each rank to {} core{} for {} threads; give each rank its cores (Open MPI: "
                 "mpirun --map-by slot:PE={} or --bind-to none)",
                 allowed, allowed == 1 ? "" : "s", threads, threads);
  return ranks;
}

namespace {

// The exit status main() gives an error, and its message.
std::pair<int, std::string> status_of(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Interrupted& e) {
    return {128 + e.signal(), e.what()};
  } catch (const Error& e) {
    return {2, e.what()};
  } catch (const std::filesystem::filesystem_error& e) {
    return {2, e.what()};
  } catch (const std::exception& e) {
    return {1, e.what()};
  }
}

}  // namespace

int end_rank(MpiCollective* ranks, std::exception_ptr error) {
  if (ranks == nullptr) std::rethrow_exception(error);
  const bool lead = ranks->rank() == 0;
  const auto [status, message] = status_of(error);
  const auto print_numbered = [&, message = message] {
    std::fprintf(stderr, "error: rank %d of %d: %s\n", ranks->rank(), ranks->world_size(), message.c_str());
  };
  // mpirun ends the job as soon as one rank exits with a non-zero status, killing the others: every
  // rank that reports prints first, and no rank leaves before they all reach the barrier.
  if (ranks->calls() == 0) {  // failed while setting up: the others are in check_ranks_agree's sum, or will be
    if (share_setup_failure(*ranks, message)) {  // every rank, alike
      if (lead) report_error(error);
    } else {
      print_numbered();
    }
    ranks->barrier();
    return status;
  }
  try {
    std::rethrow_exception(error);
  } catch (const PeerRankFailedError&) {  // that rank reports its error
    ranks->barrier();
    return 2;
  } catch (const RanksAgreeError&) {
  } catch (const RanksAgreeNumericError&) {
  } catch (const TrainingError&) {
  } catch (const Interrupted&) {
    if (lead) throw;
    return status;
  } catch (const std::exception&) {  // the other ranks may be waiting in a sum for this one
    print_numbered();
    ranks->abort(status);
  }
  // An error every rank found alike: rank 0 reports it.
  if (lead) report_error(error);
  ranks->barrier();
  return status;
}

}  // namespace difftx::cli
