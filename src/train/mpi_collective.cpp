#include "train/mpi_collective.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <cstdlib>
#include <string>

namespace difftx {

namespace {

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' && *end != '(') return std::nullopt;  // Slurm writes counts like "2(x3)"
  return static_cast<int>(x);
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail<Error>("MPI: {} failed: {}", what, std::string(text, static_cast<size_t>(len)));
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

constexpr int64_t kSmall = 4096;          // elements: below this, one all-gather

}  // namespace

std::optional<MpiLaunch> mpi_launch_from_env() {
  MpiLaunch l;
  if (auto n = env_int("OMPI_COMM_WORLD_SIZE")) {
    l.world_size = *n;
    l.rank = env_int("OMPI_COMM_WORLD_RANK").value_or(0);
    l.local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE").value_or(0);
  } else if (auto n = env_int("PMI_SIZE")) {
    l.world_size = *n;
    l.rank = env_int("PMI_RANK").value_or(0);
    l.local_size = env_int("MPI_LOCALNRANKS").value_or(0);
  } else if (auto n = env_int("SLURM_NTASKS"); n && std::getenv("SLURM_STEP_ID") != nullptr) {
    l.world_size = *n;
    l.rank = env_int("SLURM_PROCID").value_or(0);
    l.local_size = env_int("SLURM_NTASKS_PER_NODE").value_or(0);
  } else if (env_int("PMIX_RANK")) {
    l.world_size = 0;  // known once MPI has started
    l.rank = *env_int("PMIX_RANK");
    l.local_size = 0;
    return l;
  } else {
    return std::nullopt;
  }
  if (l.world_size <= 1) return std::nullopt;
  return l;
}

struct MpiCollective::PendingSum {
  std::span<float> data;
  std::vector<int> counts, displs;  // the shards of data, by rank
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;
  float* recv = nullptr;  // world_size copies of this rank's shard, in rank order (arena())
  MPI_Request request = MPI_REQUEST_NULL;
  int phase = 0;  // 0: shards moving (all-to-all), 1: summed shards moving (all-gather), 2: done
  bool scatter_only = false;  // a reduce-scatter: done after the adds
};

MpiCollective::PendingSum& MpiCollective::add_pending(std::span<float> data, int phase) {
  if (data.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    fail<Error>("MPI: a sum of {} floats is more than one call can move (split it; grad_buckets.h does)", data.size());
  ++calls_;
  PendingSum& p = pending_.emplace_back();
  p.data = data;
  p.phase = phase;
  p.counts.resize(static_cast<size_t>(world_));
  p.displs.resize(static_cast<size_t>(world_));
  for (int j = 0; j < world_; ++j) {
    const auto [begin, end] = shard_of(data.size(), j, world_);
    p.displs[j] = static_cast<int>(begin);
    p.counts[j] = static_cast<int>(end - begin);
  }
  return p;
}

MpiCollective::MpiCollective() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &world_), "MPI_Comm_size");
  check(MPI_Comm_dup(MPI_COMM_WORLD, &scatter_comm_), "MPI_Comm_dup");
  check(MPI_Comm_dup(MPI_COMM_WORLD, &gather_comm_), "MPI_Comm_dup");
  check(MPI_Comm_dup(MPI_COMM_WORLD, &move_comm_), "MPI_Comm_dup");
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
}

MpiCollective::~MpiCollective() {
  try {
    wait();
  } catch (const std::exception&) {  // finalising regardless
  }
  MPI_Comm_free(&scatter_comm_);
  MPI_Comm_free(&gather_comm_);
  MPI_Comm_free(&move_comm_);
  MPI_Finalize();
}

void MpiCollective::abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); std::_Exit(code); }

void MpiCollective::barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

template <typename T>
void MpiCollective::small_sum(std::span<T> data, MPI_Datatype type) {
  const double t0 = now();
  ++calls_;
  const int n = static_cast<int>(data.size());
  std::vector<T> all(static_cast<size_t>(n) * static_cast<size_t>(world_));
  check(MPI_Allgather(data.data(), n, type, all.data(), n, type, MPI_COMM_WORLD), "MPI_Allgather");
  for (int i = 0; i < n; ++i) {
    T acc = all[static_cast<size_t>(i)];
    for (int r = 1; r < world_; ++r) acc += all[static_cast<size_t>(r) * n + i];
    data[static_cast<size_t>(i)] = acc;
  }
  seconds_total_ += now() - t0;
  seconds_waited_ += now() - t0;
}

void MpiCollective::all_reduce_sum(std::span<double> data) {
  wait();  // one sum at a time in the order every rank issues them
  small_sum(data, MPI_DOUBLE);
}

void MpiCollective::all_reduce_sum(std::span<int64_t> data) {
  wait();
  small_sum(data, MPI_INT64_T);
}

void MpiCollective::all_reduce_sum(std::span<float> data) {
  if (static_cast<int64_t>(data.size()) < kSmall) {
    wait();
    small_sum(data, MPI_FLOAT);
    return;
  }
  start_all_reduce_sum(data);
  wait();
}

void MpiCollective::start_sum(std::span<float> data, bool scatter_only) {
  const double t0 = now();
  PendingSum& p = add_pending(data, 0);
  p.scatter_only = scatter_only;
  const int mine = p.counts[rank_];
  p.send_counts = p.counts;
  p.send_displs = p.displs;
  p.recv_counts.assign(static_cast<size_t>(world_), mine);
  p.recv_displs.resize(static_cast<size_t>(world_));
  for (int j = 0; j < world_; ++j) p.recv_displs[j] = j * mine;
  p.recv = arena(static_cast<size_t>(mine) * static_cast<size_t>(world_));
  check(MPI_Ialltoallv(p.data.data(), p.send_counts.data(), p.send_displs.data(), MPI_FLOAT, p.recv,
                       p.recv_counts.data(), p.recv_displs.data(), MPI_FLOAT, scatter_comm_, &p.request),
        "MPI_Ialltoallv");
  seconds_total_ += now() - t0;
  progress();
}

void MpiCollective::start_all_reduce_sum(std::span<float> data) { start_sum(data, false); }

void MpiCollective::start_reduce_scatter_sum(std::span<float> data) { start_sum(data, true); }

void MpiCollective::start_all_gather(std::span<float> data) {
  const double t0 = now();
  PendingSum& p = add_pending(data, 1);
  check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, p.data.data(), p.counts.data(), p.displs.data(), MPI_FLOAT,
                        move_comm_, &p.request),
        "MPI_Iallgatherv");
  seconds_total_ += now() - t0;
}

void MpiCollective::start_gather_to_root(std::span<const float> shard, std::span<float> whole, size_t n) {
  const double t0 = now();
  // The counts describe the n-element span; only rank 0's receive buffer is read by MPI.
  PendingSum& p = add_pending(std::span<float>(whole.data(), rank_ == 0 ? n : 0), 1);
  for (int j = 0; j < world_; ++j) {
    const auto [begin, end] = shard_of(n, j, world_);
    p.displs[j] = static_cast<int>(begin);
    p.counts[j] = static_cast<int>(end - begin);
  }
  if (static_cast<int>(shard.size()) != p.counts[rank_])
    fail<Error>("MPI: gather of {} floats from a shard of {} (expected {})", n, shard.size(), p.counts[rank_]);
  check(MPI_Igatherv(shard.data(), p.counts[rank_], MPI_FLOAT, whole.data(), p.counts.data(), p.displs.data(),
                     MPI_FLOAT, 0, move_comm_, &p.request),
        "MPI_Igatherv");
  seconds_total_ += now() - t0;
}

bool MpiCollective::advance(PendingSum& p, bool block) {
  if (p.phase == 2) return true;
  int done = 1;
  if (block)
    check(MPI_Wait(&p.request, MPI_STATUS_IGNORE), "MPI_Wait");
  else
    check(MPI_Test(&p.request, &done, MPI_STATUS_IGNORE), "MPI_Test");
  if (!done) return false;
  if (p.phase == 1) {
    p.phase = 2;
    return true;
  }
  const size_t mine = static_cast<size_t>(p.counts[rank_]);
  float* out = p.data.data() + p.displs[rank_];
  std::copy(p.recv, p.recv + mine, out);
  for (int r = 1; r < world_; ++r) {  // rank order: the same bits on every run
    const float* in = p.recv + static_cast<size_t>(r) * mine;
    for (size_t i = 0; i < mine; ++i) out[i] += in[i];
  }
  if (p.scatter_only) {
    p.phase = 2;
    return true;
  }
  p.phase = 1;
  check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, p.data.data(), p.counts.data(), p.displs.data(), MPI_FLOAT,
                        gather_comm_, &p.request),
        "MPI_Iallgatherv");
  return false;
}

void MpiCollective::progress() {
  const double t0 = now();
  // Every rank must start its collectives on a communicator in the same order: the all-to-alls
  // (scatter_comm_) start in bucket order when the caller starts a sum, the all-gathers
  // (gather_comm_) here, in bucket order too: a sum's all-gather never starts before an earlier
  // sum's has.
  for (PendingSum& p : pending_) {
    const int phase = p.phase;
    advance(p, /*block=*/false);
    if (phase == 0 && p.phase == 0) break;
  }
  while (!pending_.empty() && pending_.front().phase == 2) pending_.pop_front();
  seconds_total_ += now() - t0;
}

float* MpiCollective::arena(size_t floats) {
  // Blocks are kept for the whole run and reused from the first one after each wait(): the pages
  // are touched once (a fresh receive buffer per step would fault its pages in every step).
  while (block_ < blocks_.size() && block_used_ + floats > blocks_[block_].size) {
    ++block_;
    block_used_ = 0;
  }
  if (block_ == blocks_.size())
    blocks_.push_back({std::make_unique<float[]>(std::max<size_t>(floats, size_t{1} << 24)),
                       std::max<size_t>(floats, size_t{1} << 24)});
  float* at = blocks_[block_].data.get() + block_used_;
  block_used_ += floats;
  return at;
}

void MpiCollective::wait() {
  const double t0 = now();
  for (PendingSum& p : pending_)  // every all-gather started, in order
    if (p.phase == 0) advance(p, /*block=*/true);
  for (PendingSum& p : pending_) advance(p, /*block=*/true);
  pending_.clear();
  block_ = 0;  // every receive buffer is free again
  block_used_ = 0;
  seconds_total_ += now() - t0;
  seconds_waited_ += now() - t0;
}

}  // namespace difftx
