#include "infer/attention_focus.h"

#include <cmath>

#include "common/error.h"
#include "infer/token_text.h"

namespace difftx {

AttentionFocus attention_focus(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, const AttentionMaps& maps,
                               const std::string& text) {
  DecodeOptions o;
  o.skip_special_tokens = true;
  const std::string decoded = tokenizer.decode(ids, o);
  if (text.empty()) fail<ConfigError>("--focus: empty text");
  const size_t at = decoded.find(text);
  if (at == std::string::npos)
    fail<ConfigError>("--focus \"{}\" is not in the prompt as the tokenizer decodes it: \"{}\"", text, decoded);
  AttentionFocus f;
  f.text = text;
  const auto spans = token_spans(tokenizer, ids);
  for (size_t t = 0; t < spans.size(); ++t)
    if (spans[t].first < at + text.size() && spans[t].second > at) f.tokens.push_back(static_cast<int64_t>(t));
  const int64_t T = maps.seq_len, row = T - 1;
  f.uniform = static_cast<double>(f.tokens.size()) / static_cast<double>(T);
  f.mean.head = -1;
  for (const HeadMaps& h : maps.heads) {
    HeadFocus hf;
    hf.head = h.head;
    double diff_total = 0;
    for (int64_t j = 0; j < T; ++j) diff_total += maps.differential ? h.difference[row * T + j] : 0.0;
    for (int64_t t : f.tokens) {
      hf.positive += h.positive[row * T + t];
      if (maps.differential) {
        hf.negative += h.negative[row * T + t];
        hf.difference += h.difference[row * T + t];
      }
    }
    if (maps.differential) hf.difference = std::abs(diff_total) > 1e-12 ? hf.difference / diff_total : std::nan("");
    f.mean.positive += hf.positive / static_cast<double>(maps.heads.size());
    f.mean.negative += hf.negative / static_cast<double>(maps.heads.size());
    f.mean.difference += hf.difference / static_cast<double>(maps.heads.size());
    f.heads.push_back(hf);
  }
  return f;
}

}  // namespace difftx
