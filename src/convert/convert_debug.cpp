#include "convert/convert_debug.h"

#include <fmt/format.h>

#include "infer/generate.h"
#include "infer/vocab_fit.h"
#include "model/attention/layout.h"

namespace difftx {

bool debug_match_expected(const ConvertOptions& o) {
  return layout_module(o.layout).conversion_is_exact(o);
}

DebugReport convert_debug_compare(const Model& base, const Model& converted, const Tokenizer& tokenizer,
                                  const ConvertOptions& options) {
  DebugReport r;
  r.prompt = kDebugPrompt;
  EncodeOptions encode;
  encode.add_special_tokens = true;
  const std::vector<int32_t> prompt = tokenizer.encode(r.prompt, encode);
  GenerateOptions g;
  g.max_new_tokens = kDebugNewTokens;
  g.stop_ids = stop_ids_for(base.config(), tokenizer.eos_id());
  DecodeOptions decode;
  decode.skip_special_tokens = true;
  auto run = [&](const Model& m, std::vector<int32_t>& ids, std::string& text, double& seconds) {
    GenerateResult out = generate(m, prompt, g);
    ids = out.new_ids;
    seconds = out.prompt_seconds + out.generate_seconds;
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), ids.begin(), ids.end());
    text = tokenizer.decode(decodable_ids(tokenizer, all), decode);
  };
  run(base, r.base_ids, r.base_text, r.base_seconds);
  run(converted, r.converted_ids, r.converted_text, r.converted_seconds);
  r.match = r.base_text == r.converted_text;
  r.match_expected = debug_match_expected(options);
  return r;
}

ordered_json debug_report_json(const DebugReport& r) {
  return {{"prompt", r.prompt},
          {"base_text", r.base_text},
          {"converted_text", r.converted_text},
          {"base_ids", r.base_ids},
          {"converted_ids", r.converted_ids},
          {"base_seconds", r.base_seconds},
          {"converted_seconds", r.converted_seconds},
          {"match", r.match},
          {"match_expected", r.match_expected}};
}

std::string debug_report_text(const DebugReport& r) {
  std::string s;
  s += fmt::format("debug: greedy {} new tokens from \"{}\"\n", kDebugNewTokens, r.prompt);
  s += fmt::format("  base      ({:.2f} s): {}\n", r.base_seconds, r.base_text);
  s += fmt::format("  converted ({:.2f} s): {}\n", r.converted_seconds, r.converted_text);
  if (r.match) {
    s += r.match_expected ? "  match (expected: --zero-init or --init identity without sublayer norm keeps the base "
                            "model's function)\n"
                          : "  match (not expected: the negative component changed nothing on this prompt)\n";
  } else {
    s += r.match_expected ? "  no match: UNEXPECTED, --zero-init or --init identity without sublayer norm should keep "
                            "the base model's function\n"
                          : "  no match (expected: only --zero-init or --init identity, without sublayer norm, preserve "
                            "the base model's output)\n";
  }
  return s;
}

}  // namespace difftx
