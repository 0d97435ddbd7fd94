#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <system_error>

#include "common/error.h"

namespace fs = std::filesystem;

namespace difftx {

fs::path unique_sibling(const fs::path& path, const char* tag) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  fs::path clean = path;
  if (!clean.has_filename()) clean = clean.parent_path();  // "dir/" -> "dir"
  return fs::path(clean.string() + "." + tag + "-" + std::to_string(::getpid()) + "-" +
                  std::to_string(rng() % 1000000000ull));
}

namespace {

// Whether `name` is "<base>.<staging|tmp|old>-<pid>-<n>" (any base when `base` is empty) left by a
// process that no longer exists.
bool is_stale_name(const std::string& name, const std::string& base) {
  size_t dot = base.empty() ? name.rfind('.') : base.size();
  if (dot == std::string::npos || dot == 0 || name.size() <= dot + 1 || name[dot] != '.' ||
      name.compare(0, dot, base.empty() ? name.substr(0, dot) : base) != 0)
    return false;
  const std::string rest = name.substr(dot + 1);  // "<tag>-<pid>-<random>"
  size_t dash1 = rest.find('-'), dash2 = rest.find('-', dash1 + 1);
  if (dash1 == std::string::npos || dash2 == std::string::npos) return false;
  const std::string tag = rest.substr(0, dash1);
  if (tag != "staging" && tag != "tmp" && tag != "old") return false;
  const std::string pid_text = rest.substr(dash1 + 1, dash2 - dash1 - 1);
  if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const long pid = std::stol(pid_text);
  if (pid <= 0 || pid == ::getpid()) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;  // gone (not merely someone else's)
}

std::vector<fs::path> remove_stale(const fs::path& dir, const std::string& base) {
  std::vector<fs::path> removed;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return removed;
  for (const auto& entry : it) {
    if (!is_stale_name(entry.path().filename().string(), base)) continue;
    fs::remove_all(entry.path(), ec);
    if (!ec) removed.push_back(entry.path());
  }
  return removed;
}

}  // namespace

void remove_stale_siblings(const fs::path& path) {
  fs::path clean = path.has_filename() ? path : path.parent_path();
  remove_stale(clean.parent_path().empty() ? fs::path(".") : clean.parent_path(), clean.filename().string());
}

std::vector<fs::path> remove_stale_entries(const fs::path& dir) { return remove_stale(dir, ""); }

void remove_tree_atomically(const fs::path& dir) {
  std::error_code ec;
  const fs::path aside = unique_sibling(dir, "old");
  fs::rename(dir, aside, ec);
  if (ec) fail<FileError>("{}: cannot move it aside to delete it: {}", dir.string(), ec.message());
  fs::remove_all(aside, ec);
}

namespace {

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

bool path_is_inside(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(inner, ec), b = fs::weakly_canonical(outer, ec);
  auto ai = a.begin();
  for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
    if (bi->empty()) continue;  // trailing separator
    if (ai == a.end() || *ai != *bi) return false;
  }
  return true;
}

AtomicFile::AtomicFile(const fs::path& final_path) : final_path_(final_path) {
  remove_stale_siblings(final_path);
  temp_path_ = unique_sibling(final_path, "tmp");
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail<FileError>("{}: cannot create a file here: {}", final_path.string(), std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail<FileError>("{}: write failed: {} (nothing was replaced)", final_path_.string(), std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0)
    fail<FileError>("{}: fsync failed: {} (nothing was replaced)", final_path_.string(), std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail<FileError>("{}: close failed: {} (nothing was replaced)", final_path_.string(), std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    fail<FileError>("{}: cannot rename the finished file into place: {}", final_path_.string(), std::strerror(errno));
  committed_ = true;
  fsync_directory(final_path_.parent_path());
}

StagedDirectory::StagedDirectory(const fs::path& final_dir, bool overwrite, const std::vector<fs::path>& inputs)
    : final_dir_(final_dir), overwrite_(overwrite) {
  if (final_dir_.empty()) fail<FileError>("the output directory path is empty");
  if (!final_dir_.has_filename()) final_dir_ = final_dir_.parent_path();
  std::error_code ec;
  auto status = fs::symlink_status(final_dir_, ec);
  if (fs::exists(status)) {
    if (fs::is_symlink(status))
      fail<FileError>("{}: is a symbolic link; give the directory's real path (difftx replaces directories, not links)",
                      final_dir_.string());
    if (!fs::is_directory(status))
      fail<FileError>("{}: exists and is not a directory; refusing to replace it", final_dir_.string());
    if (!fs::is_empty(final_dir_, ec) && !overwrite)
      fail<FileError>("{}: output directory exists and is not empty; choose another or pass --overwrite",
                      final_dir_.string());
    for (const auto& input : inputs)
      if (!input.empty() && path_is_inside(input, final_dir_))
        fail<FileError>("{}: the output directory holds {}, which this command reads; replacing it would delete it. "
                        "Choose another output directory",
                        final_dir_.string(), input.string());
  }
  remove_stale_siblings(final_dir_);
  fs::path parent = final_dir_.parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) {
      for (fs::path p = parent; !p.empty() && p != p.parent_path(); p = p.parent_path())
        if (std::error_code e; fs::exists(p, e) && !fs::is_directory(p, e))
          fail<FileError>("{}: is a file, not a directory, so {} cannot be made in it", p.string(), final_dir_.string());
      fail<FileError>("{}: cannot create the parent directory: {}", parent.string(), ec.message());
    }
  }
  staging_ = unique_sibling(final_dir_, "staging");
  if (!fs::create_directory(staging_, ec) || ec)
    fail<FileError>("{}: cannot create a staging directory beside it: {}", final_dir_.string(),
                    ec ? ec.message() : "already exists");
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void StagedDirectory::commit() {
  std::error_code ec;
  fs::path old;
  if (fs::exists(fs::symlink_status(final_dir_, ec))) {
    if (!overwrite_ && fs::is_directory(final_dir_, ec) && !fs::is_empty(final_dir_, ec))
      fail<FileError>("{}: a non-empty directory appeared here while difftx was working; it was left untouched and "
                      "the new output discarded (pass --overwrite to replace it)",
                      final_dir_.string());
    old = unique_sibling(final_dir_, "old");
    fs::rename(final_dir_, old, ec);
    if (ec) fail<FileError>("{}: cannot move the old directory aside: {}", final_dir_.string(), ec.message());
  }
  fs::rename(staging_, final_dir_, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, final_dir_, ec2);  // put the old output back
    fail<FileError>("{}: cannot rename the finished output into place: {}", final_dir_.string(), ec.message());
  }
  committed_ = true;
  fsync_directory(final_dir_.parent_path());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace difftx
