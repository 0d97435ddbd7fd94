#include "infer/token_text.h"

#include <fmt/format.h>

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace difftx {

std::vector<std::pair<size_t, size_t>> token_spans(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  DecodeOptions o;
  o.skip_special_tokens = true;
  const std::string whole = tokenizer.decode(ids, o);
  std::vector<std::pair<size_t, size_t>> spans;
  size_t before = 0;
  for (size_t k = 1; k <= ids.size(); ++k) {
    // The part of the whole text the first k tokens already give: the common start of their decode
    // and the whole one, cut back to a character boundary. A prefix that ends inside a character
    // decodes with U+FFFD in its place (one per byte with ByteFallback), which the whole text does
    // not have there, so the character goes to the token that completes it.
    const std::string part = tokenizer.decode(std::span(ids.data(), k), o);
    size_t common = static_cast<size_t>(std::mismatch(part.begin(), part.end(), whole.begin(), whole.end()).first - part.begin());
    while (common > 0 && common < whole.size() && (static_cast<unsigned char>(whole[common]) & 0xC0) == 0x80) --common;
    const size_t now = std::max(before, common);
    spans.emplace_back(before, now);
    before = now;
  }
  return spans;
}

namespace {

// Characters that take no room when drawn (general category Cf, and the line and paragraph
// separators), so that a label made only of them would be empty.
bool invisible(char32_t c) {
  return c == 0x00AD || c == 0x061C || c == 0x180E || (c >= 0x200B && c <= 0x200F) || (c >= 0x2028 && c <= 0x202E) ||
         (c >= 0x2060 && c <= 0x2064) || (c >= 0x2066 && c <= 0x206F) || c == 0xFEFF ||
         (c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xE0000 && c <= 0xE007F);
}

// The bytes a byte-level vocabulary string stands for ("ĠðĿ" -> " \xF0\x9D"), or "" with ok false
// when a character is outside GPT-2's alphabet (SentencePiece's "▁river").
std::string byte_level_bytes(std::string_view raw, bool& ok) {
  std::string bytes;
  ok = tok::utf8_find_invalid(raw) == tok::kValidUtf8;
  for (size_t i = 0; ok && i < raw.size();) {
    const int b = tok::byte_level_byte(tok::utf8_next(raw, i));
    ok = b >= 0;
    bytes.push_back(static_cast<char>(b));
  }
  return ok ? bytes : std::string();
}

// The bytes of a byte-level token beyond its own text that are not UTF-8 on their own (the first
// bytes of a character that a later token completes), as SentencePiece's byte tokens write them:
// "<0xF0><0x9D>". Empty for every other token.
std::string partial_character_bytes(std::string_view raw, std::string_view text) {
  bool ok = false;
  const std::string bytes = byte_level_bytes(raw, ok);
  if (!ok || bytes.size() <= text.size() || std::string_view(bytes).substr(0, text.size()) != text) return {};
  const std::string_view tail = std::string_view(bytes).substr(text.size());
  if (tok::utf8_find_invalid(tail) == tok::kValidUtf8) return {};
  std::string out;
  for (unsigned char b : tail) out += fmt::format("<0x{:02X}>", b);
  return out;
}

}  // namespace

std::string label_visible(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const char32_t c = tok::utf8_next(text, i);
    if (c == U' ') out += "␣";
    else if (c == U'\n') out += "↵";
    else if (c == U'\t') out += "⇥";
    else if (c < 0x20 || c == 0x7F || invisible(c)) out += fmt::format("<U+{:04X}>", static_cast<uint32_t>(c));
    else out.append(text.substr(start, i - start));
  }
  return out;
}

std::vector<std::string> token_labels(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  DecodeOptions o;
  o.skip_special_tokens = true;
  const std::string whole = tokenizer.decode(ids, o);
  const auto spans = token_spans(tokenizer, ids);
  const std::vector<std::string> raw = tokenizer.id_to_tokens(ids);
  std::vector<std::string> labels;
  for (size_t t = 0; t < ids.size(); ++t) {
    const auto [begin, end] = spans[t];
    const std::string_view text = std::string_view(whole).substr(begin, end - begin);
    const std::string partial = tokenizer.is_special(ids[t]) ? std::string() : partial_character_bytes(raw[t], text);
    if (!tokenizer.is_special(ids[t]) && (end > begin || !partial.empty())) {
      labels.push_back(label_visible(text) + partial);
      continue;
    }
    // No text of its own: the vocabulary string, with SentencePiece's word marker shown as the
    // space it stands for (the first token's, which decoding strips).
    std::string shown = label_visible(raw[t]);
    if (!tokenizer.is_special(ids[t]))
      for (size_t at = shown.find("▁"); at != std::string::npos; at = shown.find("▁", at))
        shown.replace(at, std::string_view("▁").size(), "␣");
    labels.push_back(std::move(shown));
  }
  return labels;
}

}  // namespace difftx
