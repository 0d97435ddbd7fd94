#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "common/error.h"
#include "tokenizer/text_error.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

namespace {

constexpr std::string_view kOnigWordInClass = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
constexpr std::string_view kHexInClass = "0-9a-fA-F";

[[noreturn]] void untranslatable(const std::string& what, std::string_view pattern, std::string_view construct) {
  fail<ConfigError>("{}: regex \"{}\" uses {}, which difftx cannot translate from Oniguruma to PCRE2", what, pattern,
                    construct);
}

// Appends a class body: bare inside a class, bracketed (negated when asked) outside one.
void append_class(std::string& out, std::string_view body, bool in_class, bool negated) {
  if (!in_class) out += negated ? "[^" : "[";
  out += body;
  if (!in_class) out += ']';
}

}  // namespace

std::string regex_onig_to_pcre2(std::string_view p, const std::string& what) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  size_t class_start = 0;  // index in p just after '[' or '[^'
  for (size_t i = 0; i < p.size();) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) {
        out += c;  // PCRE2 reports the dangling backslash
        ++i;
        continue;
      }
      char e = p[i + 1];
      if (e == 'Q') {  // \Q...\E is literal text in both engines
        size_t end = p.find("\\E", i + 2);
        size_t stop = end == std::string_view::npos ? p.size() : end + 2;
        out.append(p.substr(i, stop - i));
        i = stop;
        continue;
      }
      switch (e) {
        case 's': out += "\\p{White_Space}"; break;
        case 'S': out += "\\P{White_Space}"; break;
        case 'w':
          append_class(out, kOnigWordInClass, in_class, false);
          break;
        case 'W':
          if (in_class) untranslatable(what, p, "\\W inside a character class");
          append_class(out, kOnigWordInClass, false, true);
          break;
        case 'h':
          append_class(out, kHexInClass, in_class, false);
          break;
        case 'H':
          if (in_class) untranslatable(what, p, "\\H inside a character class");
          append_class(out, kHexInClass, false, true);
          break;
        default:
          out += c;
          out += e;
      }
      i += 2;
      continue;
    }
    if (!in_class) {
      if (c == '[') {
        in_class = true;
        out += c;
        ++i;
        if (i < p.size() && p[i] == '^') {
          out += '^';
          ++i;
        }
        class_start = i;
        continue;
      }
      out += c;
      ++i;
      continue;
    }
    // Inside a character class.
    if (c == ']' && i != class_start) {
      in_class = false;
      out += c;
      ++i;
      continue;
    }
    if (c == '[') {
      if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:], same in both engines
        size_t end = p.find(":]", i + 2);
        if (end == std::string_view::npos) untranslatable(what, p, "an unterminated POSIX class");
        out.append(p.substr(i, end + 2 - i));
        i = end + 2;
        continue;
      }
      untranslatable(what, p, "a nested character class");
    }
    if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') untranslatable(what, p, "a class intersection (&&)");
    out += c;
    ++i;
  }
  return out;
}

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

// Per-thread match data (one ovector pair: only the whole match is used) and a JIT stack that can
// grow to 8 MiB for patterns that backtrack deeply on long pieces.
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (!data || !context || !stack) throw std::bad_alloc();
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& what) : pattern_(pattern) {
  std::string translated = regex_onig_to_pcre2(pattern, what);
  int error = 0;
  PCRE2_SIZE offset = 0;
  auto code = std::make_shared<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                             PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code->code)
    fail<ConfigError>("{}: regex \"{}\" does not compile: {} (at offset {} of \"{}\")", what, pattern,
                      pcre2_message(error), offset, translated);
  // Without JIT (a platform PCRE2 cannot JIT for), pcre2_match gives the same matches, slower.
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  code_ = std::move(code);
}

Regex Regex::literal(std::string_view text, const std::string& what) {
  Regex r;
  r.pattern_ = std::string(text);
  r.literal_ = std::string(text);
  r.is_literal_ = true;
  return r;
}

void Regex::find_all(std::string_view text, std::vector<ByteSpan>& out) const {
  struct Collect final : MatchVisitor {
    std::vector<ByteSpan>* out;
    void match(uint32_t begin, uint32_t end) override { out->push_back({begin, end}); }
  } collect;
  collect.out = &out;
  for_each_match(text, collect);
}

void Regex::for_each_match(std::string_view text, MatchVisitor& visitor) const {
  if (is_literal_) {
    // tokenizers escapes a String pattern into a regex; an empty one matches nothing.
    if (literal_.empty()) return;
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      visitor.match(static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + literal_.size()));
      pos += literal_.size();
    }
    return;
  }
  MatchScratch& s = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t pos = 0;
  size_t last_end = static_cast<size_t>(-1);
  while (pos <= n) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, subject, n, pos, PCRE2_NO_UTF_CHECK, s.data, s.context)
                        : pcre2_match(code_->code, subject, n, pos, PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0)
      fail<TextError>("regex \"{}\" failed on a {} byte piece of text: {}", pattern_, n, pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    size_t start = ov[0], end = ov[1];
    if (start == end && end == last_end) {
      if (end >= n) break;
      pos = end + utf8_seq_len(static_cast<unsigned char>(text[end]));
      continue;
    }
    visitor.match(static_cast<uint32_t>(start), static_cast<uint32_t>(end));
    pos = end;
    last_end = end;
  }
}

}  // namespace difftx::tok
