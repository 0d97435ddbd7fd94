// Errors difftx reports to its user.
//
// Every error caused by the user's input (a file, a flag, a config key) derives from
// difftx::Error; its message names the file and the tensor or key, and says what was expected.
// The CLI prints it and exits with code 2. Anything else escaping a command is a bug (exit 1).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace difftx {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file or directory is missing, unreadable, malformed, or cannot be written.
class FileError : public Error {
 public:
  using Error::Error;
};

// A configuration key (config.json, YAML, flag) is missing, has the wrong type or an unsupported value.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Tensor shapes or sizes disagree with what the configuration requires.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// The compute device asked for is not there (no GPU visible, difftx built without CUDA), failed,
// or ran out of memory.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// A computation from valid-looking input produced NaN or infinity (logits, a derived lambda, a
// loss): the weights are finite but out of any trained model's range. The message names the
// first non-finite position or layer and the likely cause.
class NumericError : public Error {
 public:
  using Error::Error;
};

// Formats the message and throws E. Usage: fail<FileError>("{}: header is not JSON", path).
template <class E, class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw E(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace difftx
