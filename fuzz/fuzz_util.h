// Shared by the fuzz harnesses (fuzz/README.md): each harness is a function
// `int difftx_fuzz_<target>(const uint8_t*, size_t)` that feeds one input to the parser under test
// and swallows the difftx::Error it is allowed to throw. Anything else escaping (another exception,
// a crash, a sanitizer report, a hang, unbounded memory) is a bug. The libFuzzer entry point is
// added by DIFFTX_FUZZ_ENTRY(target) when the file is built as a fuzzer; the regression test
// (tests/fuzz/regression_test.cpp) calls the same functions on every saved input.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace difftx::fuzz {

// A scratch file for parsers that read paths, reused by every input of this process.
inline std::filesystem::path scratch_file(const std::string& name, std::string_view bytes) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("difftx-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

}  // namespace difftx::fuzz

#ifdef DIFFTX_LIBFUZZER
#define DIFFTX_FUZZ_ENTRY(target)                                                     \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {           \
    return difftx_fuzz_##target(data, size);                                          \
  }
#else
#define DIFFTX_FUZZ_ENTRY(target)
#endif
