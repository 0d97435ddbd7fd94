#include "tokenizer/byte_level.h"

#include <array>

namespace difftx::tok {

namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<char, 512> utf8{};        // two bytes per entry (every char is < U+0800)
  std::array<uint8_t, 256> utf8_len{};
  std::array<int16_t, 0x144> to_byte{};  // largest char is U+0143
  Tables() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    int n = 0;
    for (int b = 0; b < 256; ++b) to_char[b] = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    to_byte.fill(-1);
    for (int b = 0; b < 256; ++b) {
      char32_t c = to_char[b];
      to_byte[c] = static_cast<int16_t>(b);
      if (c < 0x80) {
        utf8[2 * b] = static_cast<char>(c);
        utf8_len[b] = 1;
      } else {
        utf8[2 * b] = static_cast<char>(0xC0 | (c >> 6));
        utf8[2 * b + 1] = static_cast<char>(0x80 | (c & 0x3F));
        utf8_len[b] = 2;
      }
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_level_char(uint8_t b) { return tables().to_char[b]; }

size_t byte_level_encode(std::string_view bytes, char* dst) {
  const Tables& t = tables();
  char* start = dst;
  for (char ch : bytes) {
    uint8_t b = static_cast<uint8_t>(ch);
    dst[0] = t.utf8[2 * b];
    dst[1] = t.utf8[2 * b + 1];
    dst += t.utf8_len[b];
  }
  return static_cast<size_t>(dst - start);
}

void byte_level_encode(std::string_view bytes, std::string& out) {
  size_t pos = out.size();
  out.resize(pos + 2 * bytes.size());
  out.resize(pos + byte_level_encode(bytes, out.data() + pos));
}

int byte_level_byte(char32_t cp) {
  const Tables& t = tables();
  return cp < t.to_byte.size() ? t.to_byte[cp] : -1;
}

}  // namespace difftx::tok
