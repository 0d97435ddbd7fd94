// Helpers for the tokenizer tests: the shared fixtures (loaded once per process) and small
// tokenizer.json pieces built in the test.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace difftx::test {

using json = nlohmann::json;

std::filesystem::path tokenizer_fixture(const std::string& name);  // ../shared/fixtures/tokenizers/NAME

// cases.inp: the strings between "\n__ggml_vocab_test__\n" separators (the file ends with one).
std::vector<std::string> read_cases(const std::filesystem::path& file);
// cases.out: one line of space-separated ids per case.
std::vector<std::vector<int32_t>> read_expected_ids(const std::filesystem::path& file);

const Tokenizer& llama3();   // fixtures/tokenizers/llama3, loaded on first use
const Tokenizer& mistral();  // fixtures/tokenizers/mistral

// A tokenizer.json with a byte-level BPE over `vocab` tokens (ids in order) and `merges`; the
// other members are null unless set afterwards.
json tiny_tokenizer_json(const std::vector<std::string>& vocab, const std::vector<std::string>& merges);
Tokenizer from_json(const json& tokenizer, const json* config = nullptr);

// Runs one pipeline stage built from its JSON on `text` and returns the resulting strings.
std::vector<std::string> pre_tokenize(const json& pre_tokenizer, std::string_view text, bool at_start = true);
std::string normalize(const json& normalizer, std::string text);
std::vector<std::string> decode_chain(const json& decoder, std::vector<std::string> tokens);

// The message of the difftx::Error that `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace difftx::test
