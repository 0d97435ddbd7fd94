// GPT-2's byte-level alphabet (tokenizers/src/pre_tokenizers/byte_level.rs, `bytes_char`): every
// byte is shown as one printable character so that BPE can work on any byte string. Bytes '!'..'~',
// 0xA1..0xAC and 0xAE..0xFF stand for themselves (as code points); the other 68 bytes map to
// U+0100, U+0101, ... in increasing byte order (space 0x20 -> U+0120 'Ġ', '\n' -> U+010A 'Ċ').
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace difftx::tok {

// The character standing for byte b.
char32_t byte_level_char(uint8_t b);

// Appends the UTF-8 of byte_level_char(b) for every byte of `bytes`.
void byte_level_encode(std::string_view bytes, std::string& out);
// Writes it to `dst` (room for 2 * bytes.size()) and returns the length written.
size_t byte_level_encode(std::string_view bytes, char* dst);

// The byte a byte-level character stands for, or -1 when `cp` is not one of the 256.
int byte_level_byte(char32_t cp);

}  // namespace difftx::tok
