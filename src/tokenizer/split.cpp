#include "tokenizer/split.h"

#include <algorithm>

#include "common/error.h"

namespace difftx::tok {

SplitBehavior split_behavior_from_json(const JsonRef& value) {
  std::string name = value.as_string();
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  value.fail(fmt::format("\"{}\" is not a split behavior (supported: Removed, Isolated, MergedWithPrevious, "
                         "MergedWithNext, Contiguous)",
                         name));
}

Regex pattern_from_json(const JsonRef& value) {
  value.expect_object();
  if (value.value().size() != 1) value.fail("must have exactly one key, \"String\" or \"Regex\"");
  if (auto s = value.find("String")) return Regex::literal(s->as_string(), value.label() + ": " + s->where());
  if (auto r = value.find("Regex")) return Regex(r->as_string(), value.label() + ": " + r->where());
  value.fail(fmt::format("must be {{\"String\": ...}} or {{\"Regex\": ...}}, got key \"{}\"", value.value().begin().key()));
}

void spans_from_matches(size_t size, const std::vector<ByteSpan>& matches, std::vector<MatchSpan>& out) {
  if (size == 0) {
    out.push_back({0, 0, false});
    return;
  }
  uint32_t prev = 0;
  for (const ByteSpan& m : matches) {
    if (prev != m.begin) out.push_back({prev, m.begin, false});
    out.push_back({m.begin, m.end, true});
    prev = m.end;
  }
  if (prev != size) out.push_back({prev, static_cast<uint32_t>(size), false});
}

void split_spans(const std::vector<MatchSpan>& spans, SplitBehavior behavior, bool invert, std::vector<ByteSpan>& out) {
  auto matched = [invert](const MatchSpan& s) { return s.is_match != invert; };
  switch (behavior) {
    case SplitBehavior::isolated:
      for (const MatchSpan& s : spans) out.push_back({s.begin, s.end});
      return;
    case SplitBehavior::removed:
      for (const MatchSpan& s : spans)
        if (!matched(s)) out.push_back({s.begin, s.end});
      return;
    case SplitBehavior::contiguous: {
      // Consecutive spans with the same flag are joined (the first span always opens a piece when
      // it is a match, since the "previous" flag starts false).
      const size_t first = out.size();
      bool previous = false;
      for (const MatchSpan& s : spans) {
        bool m = matched(s);
        if (m == previous && out.size() > first) out.back().end = s.end;
        else out.push_back({s.begin, s.end});
        previous = m;
      }
      return;
    }
    case SplitBehavior::merged_with_previous: {
      const size_t first = out.size();
      bool previous = false;
      for (const MatchSpan& s : spans) {
        bool m = matched(s);
        if (m && !previous && out.size() > first) out.back().end = s.end;
        else out.push_back({s.begin, s.end});
        previous = m;
      }
      return;
    }
    case SplitBehavior::merged_with_next: {
      // Walk backwards, attaching each match that follows a non-match (in reverse order) to the
      // piece after it, then restore the order.
      const size_t first = out.size();
      bool previous = false;
      for (size_t k = spans.size(); k-- > 0;) {
        const MatchSpan& s = spans[k];
        bool m = matched(s);
        if (m && !previous && out.size() > first) out.back().begin = s.begin;
        else out.push_back({s.begin, s.end});
        previous = m;
      }
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
      return;
    }
  }
}

}  // namespace difftx::tok
