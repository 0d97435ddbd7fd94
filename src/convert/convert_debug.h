// The seed's --debug check: greedy-generate 20 new tokens from "The quick brown fox" with the
// base and the converted model and compare the texts. A match is expected only for --zero-init or
// --init identity without sublayer norm (then the converted model computes the base model, spec §5, §9).
#pragma once

#include <string>
#include <vector>

#include "convert/diff_convert.h"
#include "io/json_file.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace difftx {

inline constexpr const char* kDebugPrompt = "The quick brown fox";
inline constexpr int64_t kDebugNewTokens = 20;

struct DebugReport {
  std::string prompt;
  std::string base_text, converted_text;  // prompt + generation, special tokens skipped (as the seed decodes)
  std::vector<int32_t> base_ids, converted_ids;  // generated ids
  double base_seconds = 0, converted_seconds = 0;
  bool match = false;
  bool match_expected = false;
};

bool debug_match_expected(const ConvertOptions& options);

DebugReport convert_debug_compare(const Model& base, const Model& converted, const Tokenizer& tokenizer,
                                  const ConvertOptions& options);

ordered_json debug_report_json(const DebugReport& r);
std::string debug_report_text(const DebugReport& r);

}  // namespace difftx
