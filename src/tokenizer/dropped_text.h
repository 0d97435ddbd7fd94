// Characters a BPE model drops: not in the vocabulary, no unk token, no byte fallback. The
// tokenizers library drops them the same way (so the ids stay as they are); difftx counts them so
// that commands can say what was lost.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace difftx {

struct DroppedText {
  static constexpr size_t kShown = 8;
  uint64_t bytes = 0;               // UTF-8 bytes dropped
  uint64_t characters = 0;
  std::vector<std::string> first;   // the first kShown distinct characters dropped

  void add(std::string_view character) {
    bytes += character.size();
    characters += 1;
    if (first.size() < kShown && std::find(first.begin(), first.end(), character) == first.end())
      first.emplace_back(character);
  }
  // "the tokenizer dropped 12 bytes (7 characters, e.g. "é", "ß"): its vocabulary lacks them and it
  // has neither an unk token nor byte fallback", or "" when nothing was dropped.
  std::string warning() const {
    if (bytes == 0) return {};
    std::vector<std::string> quoted;
    for (const std::string& c : first) quoted.push_back(quote(c));
    return fmt::format("the tokenizer dropped {} byte{} ({} character{}, e.g. {}): its vocabulary lacks them and it "
                       "has neither an unk token nor byte fallback, so they are left out of the ids (as the "
                       "tokenizers library does)",
                       bytes, bytes == 1 ? "" : "s", characters, characters == 1 ? "" : "s", fmt::join(quoted, ", "));
  }
  // The character in double quotes, control characters escaped (\n, \t, \u0001), so the warning stays one line.
  static std::string quote(const std::string& c) {
    if (c == "\n") return "\"\\n\"";
    if (c == "\t") return "\"\\t\"";
    if (c == "\r") return "\"\\r\"";
    if (c.size() == 1 && (static_cast<unsigned char>(c[0]) < 0x20 || c[0] == 0x7f))
      return fmt::format("\"\\u{:04x}\"", static_cast<unsigned char>(c[0]));
    return "\"" + c + "\"";
  }
  void merge(const DroppedText& other) {
    bytes += other.bytes;
    characters += other.characters;
    for (const std::string& c : other.first)
      if (first.size() < kShown && std::find(first.begin(), first.end(), c) == first.end()) first.push_back(c);
  }
};

}  // namespace difftx
