// UTF-8 and the Unicode character classes that Hugging Face tokenizers uses through Rust's `char`
// methods. Everything here works on byte offsets into std::string_view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/utf8_valid.h"

namespace difftx::tok {

using difftx::kValidUtf8;         // common/utf8_valid.h
using difftx::utf8_find_invalid;  // common/utf8_valid.h

// Length in bytes of the sequence that starts with `lead` (1 for continuation bytes, so that a
// scan over valid text never stalls).
inline size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point at s[i] and advances i past it. `s` must be valid UTF-8.
inline char32_t utf8_next(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  size_t n = utf8_seq_len(c);
  char32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

// The code point that ends at byte offset `end` (exclusive). `s` must be valid UTF-8, end > 0.
char32_t utf8_prev(std::string_view s, size_t end);

// Appends the UTF-8 encoding of `cp` (cp <= U+10FFFF, not a surrogate).
void utf8_append(std::string& out, char32_t cp);

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_white_space(char32_t cp);

// Rust's char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t cp);

// tokenizers' `is_punc`: char::is_ascii_punctuation or general category Pc, Pd, Ps, Pe, Pi, Pf, Po.
bool is_punctuation(char32_t cp);

// The word character of Rust's `regex` crate (`\w`): Alphabetic, Mark, Decimal_Number,
// Connector_Punctuation or Join_Control. Used for AddedToken.single_word, as tokenizers does.
bool is_rust_word_char(char32_t cp);

// Rust's char::to_lowercase appended to `out`: the Unicode lowercase mapping, including the one
// unconditional multi-character mapping (U+0130 -> "i\u0307"). Context-free, like Rust's per-char call.
void append_lowercase(std::string& out, char32_t cp);

}  // namespace difftx::tok
