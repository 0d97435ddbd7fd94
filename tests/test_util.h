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

// The difftx binary under test: $DIFFTX_BINARY, else the one built beside the tests.
std::string difftx_binary();
// Runs the difftx binary with the given arguments (each shell-quoted).
RunResult run_difftx(const std::vector<std::string>& args);
// Runs `program` with the arguments (each shell-quoted), after `env` assignments ("NAME=value").
RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {});

// A difftx process started in the background (stdout and stderr to files), for signal tests.
struct Child {
  int pid = -1;
  std::filesystem::path out, err;
};
Child spawn_difftx(const std::vector<std::string>& args, const std::filesystem::path& log_dir);
// The same for any program (looked up on PATH).
Child spawn_program(const std::string& program, const std::vector<std::string>& args,
                    const std::filesystem::path& log_dir);
// Waits for it: its exit code, or 128 + the signal that killed it.
int wait_child(const Child& child);

std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);
void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_bytes(const std::filesystem::path& path);

// Copies a directory tree (files only), for corrupting a copy of a fixture.
void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to);

std::filesystem::path source_dir();  // repository root
std::filesystem::path golden_dir();  // tests/golden

}  // namespace difftx::test
