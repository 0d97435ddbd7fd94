// Encoding throughput of a tokenizer on a text file, one thread. The first pass starts with empty
// caches (what encoding a new corpus costs); the best of the following passes is the warm speed.
// Usage: tokenizer_bench TOKENIZER_DIR TEXT_FILE [--repeats N] [--ids-out FILE] [--json]
//   --ids-out FILE  writes the ids of the first pass, one per line (for comparing implementations)
//   --json          prints {"load_s", "bytes", "ids", "first_s", "first_mb_s", "best_s", "best_mb_s", ...}
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

using namespace difftx;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<FileError>("{}: cannot open", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: tokenizer_bench TOKENIZER_DIR TEXT_FILE [--repeats N] [--ids-out FILE] [--json]\n");
    return 2;
  }
  std::string dir = argv[1], text_path = argv[2], ids_out;
  int repeats = 5;
  bool json = false;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--repeats" && i + 1 < argc) repeats = std::max(1, std::atoi(argv[++i]));
    else if (a == "--ids-out" && i + 1 < argc) ids_out = argv[++i];
    else if (a == "--json") json = true;
    else {
      fmt::print(stderr, "tokenizer_bench: unknown argument {}\n", a);
      return 2;
    }
  }
  try {
    auto t0 = std::chrono::steady_clock::now();
    Tokenizer tokenizer = Tokenizer::load(dir);
    double load_s = seconds_since(t0);
    std::string text = read_file(text_path);

    t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> ids = tokenizer.encode(text);
    double first_s = seconds_since(t0);
    double best_s = first_s;
    for (int r = 0; r < repeats; ++r) {
      t0 = std::chrono::steady_clock::now();
      std::vector<int32_t> again = tokenizer.encode(text);
      best_s = std::min(best_s, seconds_since(t0));
      if (again != ids) fail<Error>("encoding is not deterministic: pass {} differs from the first", r + 2);
    }
    t0 = std::chrono::steady_clock::now();
    std::string decoded = tokenizer.decode(ids);
    double decode_s = seconds_since(t0);
    bool roundtrip = decoded == text;

    if (!ids_out.empty()) {
      std::string lines;
      lines.reserve(ids.size() * 7);
      for (int32_t id : ids) fmt::format_to(std::back_inserter(lines), "{}\n", id);
      std::ofstream(ids_out, std::ios::binary) << lines;
    }
    const double mb = text.size() / 1e6;
    if (json) {
      fmt::print(
          "{{\"load_s\": {:.3f}, \"bytes\": {}, \"ids\": {}, \"first_s\": {:.4f}, \"first_mb_s\": {:.2f}, "
          "\"best_s\": {:.4f}, \"best_mb_s\": {:.2f}, \"decode_s\": {:.4f}, \"roundtrip\": {}}}\n",
          load_s, text.size(), ids.size(), first_s, mb / first_s, best_s, mb / best_s, decode_s, roundtrip);
    } else {
      fmt::print("tokenizer   {} (loaded in {:.2f} s)\n", dir, load_s);
      fmt::print("text        {} ({} bytes) -> {} ids\n", text_path, text.size(), ids.size());
      fmt::print("encode      first pass {:.3f} s = {:.2f} MB/s; best of {} more {:.3f} s = {:.2f} MB/s\n", first_s,
                 mb / first_s, repeats, best_s, mb / best_s);
      fmt::print("decode      {:.3f} s = {:.2f} MB/s; decode(encode(text)) == text: {}\n", decode_s, mb / decode_s,
                 roundtrip ? "yes" : "NO");
    }
    return 0;
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}
