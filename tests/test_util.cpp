#include "test_util.h"

#include <cstdlib>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace fs = std::filesystem;

namespace difftx::test {

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("difftx-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

}  // namespace

// DIFFTX_BINARY in the environment overrides the binary the tests were built with (as DIFFTX_SOURCE_DIR).
std::string difftx_binary() {
  const char* env = std::getenv("DIFFTX_BINARY");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(DIFFTX_BINARY);
}

RunResult run_difftx(const std::vector<std::string>& args) { return run_program(difftx_binary(), args); }

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::vector<std::string>& env) {
  TempDir tmp;
  std::string cmd;
  for (const auto& e : env) cmd += "export " + shell_quote(e) + "; ";
  cmd += shell_quote(program);
  for (const auto& a : args) {
    cmd.push_back(' ');
    cmd.append(shell_quote(a));
  }
  cmd.append(" >");
  cmd.append(shell_quote((tmp / "out").string()));
  cmd.append(" 2>");
  cmd.append(shell_quote((tmp / "err").string()));
  int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(tmp / "out");
  r.err = read_text(tmp / "err");
  return r;
}

Child spawn_difftx(const std::vector<std::string>& args, const fs::path& log_dir) {
  return spawn_program(difftx_binary(), args, log_dir);
}

Child spawn_program(const std::string& program, const std::vector<std::string>& args, const fs::path& log_dir) {
  static int counter = 0;
  Child c;
  c.out = log_dir / ("child-" + std::to_string(++counter) + ".out");
  c.err = log_dir / ("child-" + std::to_string(counter) + ".err");
  std::vector<std::string> argv_s = {program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  if (posix_spawnp(&pid, argv_s[0].c_str(), &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  c.pid = pid;
  return c;
}

int wait_child(const Child& child) {
  int status = 0;
  if (child.pid <= 0 || waitpid(child.pid, &status, 0) != child.pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

// DIFFTX_SOURCE_DIR in the environment overrides the checkout the tests were built in (test
// binaries carried to another machine, scripts/device_check.sh).
fs::path source_dir() {
  const char* env = std::getenv("DIFFTX_SOURCE_DIR");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(DIFFTX_SOURCE_DIR);
}
fs::path golden_dir() { return source_dir() / "tests" / "golden"; }

}  // namespace difftx::test
