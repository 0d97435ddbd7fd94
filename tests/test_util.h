// Helpers shared by the tests: temporary directories, running the CLI, reading files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace difftx::test {

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the difftx binary with the given arguments (each shell-quoted).
RunResult run_difftx(const std::vector<std::string>& args);

std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);
void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_bytes(const std::filesystem::path& path);

// Copies a directory tree (files only), for corrupting a copy of a fixture.
void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to);

std::filesystem::path source_dir();  // repository root
std::filesystem::path golden_dir();  // tests/golden

}  // namespace difftx::test
