#include "tokenizer/normalizers.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "common/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/split.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

namespace {

constexpr std::string_view kSupported = "Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend";

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// NFC, NFD, NFKC, NFKD through utf8proc_map. ASCII text is already in every form.
class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &out,
                                      static_cast<utf8proc_option_t>(options_));
    // Only reachable on invalid UTF-8 or out of memory; the input was validated before.
    if (n < 0) throw std::runtime_error(std::string("utf8proc_map failed: ") + utf8proc_errmsg(n));
    text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) append_lowercase(out, utf8_next(text, i));
    text.swap(out);
  }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!is_white_space(utf8_next(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        if (!is_white_space(utf8_prev(text, end))) break;
        size_t start = end - 1;  // step back over the whole character
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    std::vector<ByteSpan> matches;
    pattern_.find_all(text, matches);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size() + matches.size() * content_.size());
    size_t prev = 0;
    for (const ByteSpan& m : matches) {
      out.append(text, prev, m.begin - prev);
      out += content_;
      prev = m.end;
    }
    out.append(text, prev, std::string::npos);
    text.swap(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

}  // namespace

std::unique_ptr<Normalizer> normalizer_from_json(const JsonRef& value) {
  if (value.is_null()) return nullptr;
  std::string type = value.at("type").as_string();
  if (type == "Sequence") {
    value.expect_keys({"type", "normalizers"});
    JsonRef list = value.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.array_size(); ++i) {
      if (list[i].is_null()) list[i].fail("must be a normalizer object, got null");
      parts.push_back(normalizer_from_json(list[i]));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    value.expect_keys({"type"});
    int options = UTF8PROC_STABLE;
    options |= (type == "NFC" || type == "NFKC") ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    if (type == "NFKC" || type == "NFKD") options |= UTF8PROC_COMPAT;
    return std::make_unique<UnicodeNormalizer>(options);
  }
  if (type == "Lowercase") {
    value.expect_keys({"type"});
    return std::make_unique<LowercaseNormalizer>();
  }
  if (type == "Strip") {
    value.expect_keys({"type", "strip_left", "strip_right"});
    return std::make_unique<StripNormalizer>(value.at("strip_left").as_bool(), value.at("strip_right").as_bool());
  }
  if (type == "Replace") {
    value.expect_keys({"type", "pattern", "content"});
    return std::make_unique<ReplaceNormalizer>(pattern_from_json(value.at("pattern")), value.at("content").as_string());
  }
  if (type == "Prepend") {
    value.expect_keys({"type", "prepend"});
    return std::make_unique<PrependNormalizer>(value.at("prepend").as_string());
  }
  value.fail_type(type, kSupported);
}

}  // namespace difftx::tok
