#include "tokenizer/decoders.h"

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/metaspace.h"
#include "tokenizer/regex.h"
#include "tokenizer/split.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

namespace {

constexpr std::string_view kSupported = "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence";
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      size_t mark = bytes.size();
      bool all = true;
      for (size_t i = 0; i < t.size();) {
        int b = byte_level_byte(utf8_next(t, i));
        if (b < 0) {
          all = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    std::string text;
    utf8_lossy_append(bytes, text);
    tokens.assign(1, std::move(text));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<ByteSpan> matches;
    for (std::string& t : tokens) {
      matches.clear();
      pattern_.find_all(t, matches);
      if (matches.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (const ByteSpan& m : matches) {
        out.append(t, prev, m.begin - prev);
        out += content_;
        prev = m.end;
      }
      out.append(t, prev, std::string::npos);
      t.swap(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    auto flush = [&]() {
      if (bytes.empty()) return;
      if (utf8_find_invalid(bytes) == kValidUtf8) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < bytes.size(); ++k) out.emplace_back(kReplacementChar);
      }
      bytes.clear();
    };
    for (std::string& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_value(t[3]) >= 0 && hex_value(t[4]) >= 0) {
        bytes.push_back(static_cast<char>(hex_value(t[3]) * 16 + hex_value(t[4])));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t begin = 0;
      for (size_t k = 0; k < start_ && begin < t.size(); ++k) {
        size_t next = begin;
        if (utf8_next(t, next) != content_) break;
        begin = next;
      }
      size_t end = t.size();
      for (size_t k = 0; k < stop_ && end > begin; ++k) {
        if (utf8_prev(t, end) != content_) break;
        --end;
        while (end > begin && (static_cast<unsigned char>(t[end]) & 0xC0) == 0x80) --end;
      }
      t = t.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  explicit MetaspaceDecoder(MetaspaceOptions o) : o_(std::move(o)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const std::string& rep = o_.replacement_utf8;
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (t.find(rep) == std::string::npos) continue;
      const bool drop = i == 0 && o_.scheme != PrependScheme::never;
      std::string out;
      for (size_t pos = 0; pos < t.size();) {
        if (t.compare(pos, rep.size(), rep) == 0) {
          if (!drop) out += ' ';
          pos += rep.size();
        } else {
          out += t[pos++];
        }
      }
      t.swap(out);
    }
  }

 private:
  MetaspaceOptions o_;
};

}  // namespace

void utf8_lossy_append(std::string_view s, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // Length and the allowed range of the second byte (Unicode Table 3-7).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    if (len == 0) {
      out += kReplacementChar;
      ++i;
      continue;
    }
    size_t k = 1;
    for (; k < len && i + k < n; ++k) {
      unsigned char cc = p[i + k];
      bool ok = k == 1 ? (cc >= lo && cc <= hi) : (cc >= 0x80 && cc <= 0xBF);
      if (!ok) break;
    }
    if (k == len) {
      out.append(s.substr(i, len));
    } else {
      out += kReplacementChar;  // the maximal subpart p[i, i+k) is one error
    }
    i += k;
  }
}

std::unique_ptr<Decoder> decoder_from_json(const JsonRef& value) {
  if (value.is_null()) return nullptr;
  std::string type = value.at("type").as_string();
  if (type == "Sequence") {
    value.expect_keys({"type", "decoders"});
    JsonRef list = value.at("decoders");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.array_size(); ++i) {
      if (list[i].is_null()) list[i].fail("must be a decoder object, got null");
      parts.push_back(decoder_from_json(list[i]));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") {
    value.expect_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    value.get_bool("add_prefix_space", true);
    value.get_bool("trim_offsets", true);
    value.get_bool("use_regex", true);
    return std::make_unique<ByteLevelDecoder>();
  }
  if (type == "Replace") {
    value.expect_keys({"type", "pattern", "content"});
    return std::make_unique<ReplaceDecoder>(pattern_from_json(value.at("pattern")), value.at("content").as_string());
  }
  if (type == "ByteFallback") {
    value.expect_keys({"type"});
    return std::make_unique<ByteFallbackDecoder>();
  }
  if (type == "Fuse") {
    value.expect_keys({"type"});
    return std::make_unique<FuseDecoder>();
  }
  if (type == "Strip") {
    value.expect_keys({"type", "content", "start", "stop"});
    int64_t start = value.at("start").as_int(), stop = value.at("stop").as_int();
    if (start < 0) value.at("start").fail("must not be negative");
    if (stop < 0) value.at("stop").fail("must not be negative");
    return std::make_unique<StripDecoder>(value.at("content").as_char(), static_cast<size_t>(start),
                                          static_cast<size_t>(stop));
  }
  if (type == "Metaspace") {
    value.expect_keys({"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
    return std::make_unique<MetaspaceDecoder>(metaspace_options_from_json(value));
  }
  value.fail_type(type, kSupported);
}

}  // namespace difftx::tok
