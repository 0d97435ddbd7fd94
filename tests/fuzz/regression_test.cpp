// Replays every input saved under fuzz/regressions/TARGET/ (each once made a fuzz target crash,
// leak, hang or allocate without bound, and was fixed) and the committed seeds through the same
// harness functions the fuzzers run (fuzz/*_fuzz.cpp). Runs in every build, sanitizers included.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>

#include "test_util.h"

int difftx_fuzz_safetensors(const uint8_t* data, size_t size);
int difftx_fuzz_config(const uint8_t* data, size_t size);
int difftx_fuzz_tokenizer(const uint8_t* data, size_t size);
int difftx_fuzz_yaml(const uint8_t* data, size_t size);
int difftx_fuzz_dataset(const uint8_t* data, size_t size);

namespace difftx {
namespace {

namespace fs = std::filesystem;
using Harness = std::function<int(const uint8_t*, size_t)>;

const std::map<std::string, Harness>& harnesses() {
  static const std::map<std::string, Harness> h = {{"safetensors", difftx_fuzz_safetensors},
                                                   {"config", difftx_fuzz_config},
                                                   {"tokenizer", difftx_fuzz_tokenizer},
                                                   {"yaml", difftx_fuzz_yaml},
                                                   {"dataset", difftx_fuzz_dataset}};
  return h;
}

int replay(const std::string& target, const std::vector<uint8_t>& input) {
  return harnesses().at(target)(input.data(), input.size());
}

TEST(FuzzRegressions, EverySavedInputIsHandled) {
  const fs::path dir = test::source_dir() / "fuzz" / "regressions";
  int replayed = 0;
  if (fs::is_directory(dir))
    for (const auto& target_dir : fs::directory_iterator(dir)) {
      const std::string target = target_dir.path().filename().string();
      ASSERT_TRUE(harnesses().count(target)) << "fuzz/regressions/" << target << " names no fuzz target";
      for (const auto& f : fs::directory_iterator(target_dir.path())) {
        SCOPED_TRACE(f.path().string());
        EXPECT_EQ(replay(target, test::read_bytes(f.path())), 0);
        ++replayed;
      }
    }
  std::printf("%d saved fuzz inputs replayed\n", replayed);
}

TEST(FuzzRegressions, SeedsAndEdgeInputsAreHandled) {
  for (const auto& [target, harness] : harnesses()) {
    SCOPED_TRACE(target);
    EXPECT_EQ(replay(target, {}), 0);
    EXPECT_EQ(replay(target, {0}), 0);
    EXPECT_EQ(replay(target, std::vector<uint8_t>(4096, 0xFF)), 0);
  }
  for (const char* seed : {"tokenizer-bytelevel.json", "tokenizer-metaspace.json"}) {
    std::vector<uint8_t> input = {0};
    const auto json = test::read_bytes(test::source_dir() / "fuzz" / "seeds" / seed);
    input.insert(input.end(), json.begin(), json.end());
    EXPECT_EQ(replay("tokenizer", input), 0) << seed;
  }
}

}  // namespace
}  // namespace difftx
