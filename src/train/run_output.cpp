#include "train/run_output.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/model_files.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

constexpr const char* kCompleteMarker = "COMPLETE";  // written once every entry has been moved aside

bool is_tokenizer_file(const std::string& name) {
  return std::any_of(std::begin(kTokenizerFiles), std::end(kTokenizerFiles), [&](const char* f) { return name == f; });
}

// What a run commits: a checkpoint, or the final model (or adapter).
bool is_committed_output(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.starts_with("checkpoint-") || name == "config.json" || is_model_weights_file(name) ||
         name == "adapter_config.json" || name == "adapter_model.safetensors";
}

// Everything a run writes into output_dir (the tokenizer files travel with the final model).
bool is_run_output(const std::string& name) {
  return is_committed_output(name) || name == "metrics.jsonl" || name == "runs" || is_tokenizer_file(name);
}

std::string names(const std::vector<fs::path>& entries) {
  std::vector<std::string> n;
  for (const auto& e : entries) n.push_back(e.filename().string());
  std::sort(n.begin(), n.end());
  if (n.size() > 6) n.resize(6), n.back() = "...";
  return fmt::format("{}", fmt::join(n, ", "));
}

}  // namespace

std::vector<fs::path> earlier_run_entries(const fs::path& out_dir) {
  std::error_code ec;
  std::vector<fs::path> entries = checkpoint_list(out_dir);
  for (const auto& e : fs::directory_iterator(out_dir, ec))
    if (is_run_output(e.path().filename().string()) && !e.path().filename().string().starts_with("checkpoint-"))
      entries.push_back(e.path());
  return entries;
}

EarlierRun::EarlierRun(const fs::path& out_dir, bool overwrite) {
  std::error_code ec;
  const fs::path aside = out_dir / kOverwrittenRunDir;
  const bool has_aside = fs::exists(aside, ec);
  const bool aside_complete = fs::exists(aside / kCompleteMarker, ec);
  const std::vector<fs::path> entries = earlier_run_entries(out_dir);
  // A checkpoint or model beside a complete .overwritten-run was committed after it was set aside
  // (a resumed run, or a run killed just before deleting it): that run is the earlier one now.
  const bool committed_beside = std::any_of(entries.begin(), entries.end(), is_committed_output);
  if (entries.empty() && !has_aside) return;
  if (!overwrite) {
    if (!entries.empty() && !(aside_complete && !committed_beside))
      fail<FileError>("{}: holds the files of an earlier run ({}){}; set resume_from_checkpoint to continue it, pass "
                      "--overwrite to replace it, or choose another output_dir",
                      out_dir.string(), names(entries),
                      has_aside ? fmt::format(" and {}, a run set aside by an earlier --overwrite", aside.string()) : "");
    fail<FileError>("{}: holds {}, an earlier run set aside by an --overwrite whose run never saved anything{}; pass "
                    "--overwrite to start over (it stays aside until the new run saves), or move its files back to "
                    "resume it",
                    out_dir.string(), aside.string(),
                    entries.empty() ? "" : fmt::format(" (that run left {})", names(entries)));
  }
  if (has_aside && aside_complete && committed_beside) {
    remove_tree_atomically(aside);
    spdlog::info("{}: removed {}: the run beside it has saved since it was set aside", out_dir.string(),
                 aside.string());
  } else if (aside_complete) {  // what is beside it comes from an --overwrite run that never committed
    for (const fs::path& p : entries) fs::remove_all(p, ec);
    if (!entries.empty())
      spdlog::warn("{}: keeps the earlier run set aside in {}; removed {} left by a run that never saved",
                   out_dir.string(), aside.string(), names(entries));
    aside_ = aside;
    return;
  }
  fs::create_directories(aside, ec);
  if (ec) fail<FileError>("{}: cannot create it to set the earlier run aside: {}", aside.string(), ec.message());
  for (const fs::path& p : entries) {
    fs::rename(p, aside / p.filename(), ec);
    if (ec)
      fail<FileError>("{}: cannot move it into {} (--overwrite sets the earlier run aside first): {}", p.string(),
                      aside.string(), ec.message());
  }
  AtomicFile marker(aside / kCompleteMarker);
  marker.commit();
  if (!entries.empty())
    spdlog::info("--overwrite: moved the earlier run ({}) into {}; it is deleted when this run saves its first "
                 "checkpoint or model",
                 names(entries), aside.string());
  aside_ = aside;
}

void EarlierRun::discard() {
  if (aside_.empty()) return;
  remove_tree_atomically(aside_);
  aside_.clear();
}

}  // namespace difftx
