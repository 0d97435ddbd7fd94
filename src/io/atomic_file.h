// Crash-safe outputs: a file or a directory is written under a temporary name beside its final
// place and renamed into place only when complete, so a reader never sees a half-written output
// and an earlier output is never lost to a failed write.
#pragma once

#include <cstddef>
#include <filesystem>
#include <vector>

namespace difftx {

// One file. write() appends; commit() flushes, fsyncs and renames over the final path.
// Destroyed without commit(), the temporary file is removed. Errors (e.g. a full disk) throw
// FileError naming the final path.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& final_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void commit();
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// One output directory. The constructor refuses, before any work is done: an empty path; an
// existing non-empty directory unless `overwrite`; with `overwrite`, a directory that contains any
// of `inputs` (replacing it would delete what is being read, e.g. the base model). It creates a
// staging directory beside the target; the caller writes into staging(); commit() puts it in
// place, replacing the old directory only then, and refuses (keeping both) if a non-empty
// directory appeared at the target meanwhile without `overwrite`. Destroyed without commit(), the
// staging directory is removed. Staging, temporary and set-aside names left by difftx processes
// that no longer run (killed mid-write) are removed when the next output is prepared beside them.
class StagedDirectory {
 public:
  StagedDirectory(const std::filesystem::path& final_dir, bool overwrite,
                  const std::vector<std::filesystem::path>& inputs = {});
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  const std::filesystem::path& staging() const { return staging_; }
  const std::filesystem::path& final_dir() const { return final_dir_; }
  void commit();

 private:
  std::filesystem::path final_dir_;
  std::filesystem::path staging_;
  bool overwrite_ = false;
  bool committed_ = false;
};

// True when `inner` is `outer` or lies below it, after resolving symbolic links and "..".
bool path_is_inside(const std::filesystem::path& inner, const std::filesystem::path& outer);

// A name beside `path` that no other process uses: "<path>.<tag>-<pid>-<random>".
std::filesystem::path unique_sibling(const std::filesystem::path& path, const char* tag);

// Removes the siblings "<path>.<tag>-<pid>-<random>" (tags staging, tmp, old) whose process is gone.
void remove_stale_siblings(const std::filesystem::path& path);

// Removes every entry of `dir` named "<name>.<staging|tmp|old>-<pid>-<n>" whose process is gone
// (what a killed difftx left) and returns their paths, for reporting.
std::vector<std::filesystem::path> remove_stale_entries(const std::filesystem::path& dir);

// Deletes a directory tree so that a crash midway never leaves a partial tree under its own name:
// it is renamed aside ("<name>.old-<pid>-<n>", which remove_stale_* clean up) and then removed.
// Throws FileError when it cannot be moved.
void remove_tree_atomically(const std::filesystem::path& dir);

}  // namespace difftx
