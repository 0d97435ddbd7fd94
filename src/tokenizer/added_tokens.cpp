#include "tokenizer/added_tokens.h"

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

void AddedVocabulary::Trie::insert(std::string_view pattern, int32_t token) {
  if (nodes.empty()) nodes.emplace_back();
  first_byte[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (char ch : pattern) {
    auto c = static_cast<unsigned char>(ch);
    int32_t next = -1;
    for (const auto& [byte, child] : nodes[node].children)
      if (byte == c) next = child;
    if (next < 0) {
      next = static_cast<int32_t>(nodes.size());
      nodes[node].children.emplace_back(c, next);
      nodes.emplace_back();
    }
    node = next;
  }
  // Two tokens with the same pattern (possible after normalization): the first one listed wins,
  // as the first pattern does in tokenizers' leftmost-longest automaton.
  if (nodes[node].token < 0) nodes[node].token = token;
}

std::pair<int32_t, size_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  int32_t node = 0, best = -1;
  size_t best_len = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    int32_t next = -1;
    for (const auto& [byte, child] : nodes[node].children)
      if (byte == c) {
        next = child;
        break;
      }
    if (next < 0) break;
    node = next;
    if (nodes[node].token >= 0) {
      best = nodes[node].token;
      best_len = i + 1 - pos;
    }
  }
  return {best, best_len};
}

AddedVocabulary AddedVocabulary::from_json(const JsonRef& list, const BpeModel& model, const Normalizer* normalizer) {
  AddedVocabulary v;
  const size_t n = list.array_size();
  for (size_t i = 0; i < n; ++i) {
    JsonRef item = list[i];
    item.expect_keys({"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    AddedToken t;
    int64_t id = item.at("id").as_int();
    if (id < 0 || id > INT32_MAX) item.at("id").fail("must be an id from 0 to 2147483647");
    t.id = static_cast<int32_t>(id);
    t.content = item.at("content").as_string();
    if (t.content.empty()) item.at("content").fail("must not be empty");
    if (utf8_find_invalid(t.content) != kValidUtf8) item.at("content").fail("is not valid UTF-8");
    t.single_word = item.get_bool("single_word", false);
    t.lstrip = item.get_bool("lstrip", false);
    t.rstrip = item.get_bool("rstrip", false);
    t.special = item.get_bool("special", false);
    t.normalized = item.get_bool("normalized", !t.special);
    if (auto in_vocab = model.token_to_id(t.content); in_vocab && *in_vocab != t.id)
      item.fail(fmt::format("gives \"{}\" id {}, but model.vocab has it as id {}", t.content, t.id, *in_vocab));
    if (const std::string* other = model.id_to_token(t.id); other && *other != t.content)
      item.fail(fmt::format("gives id {} to \"{}\", but model.vocab has \"{}\" there", t.id, t.content, *other));
    if (v.by_id_.count(t.id)) item.fail(fmt::format("repeats id {}", t.id));
    if (v.by_content_.count(t.content)) item.fail(fmt::format("repeats \"{}\"", t.content));
    v.by_id_.emplace(t.id, v.tokens_.size());
    v.by_content_.emplace(t.content, t.id);
    v.tokens_.push_back(std::move(t));
  }
  for (size_t k = 0; k < v.tokens_.size(); ++k) {
    const AddedToken& t = v.tokens_[k];
    if (!t.normalized) {
      v.trie_[0].insert(t.content, static_cast<int32_t>(k));
      continue;
    }
    std::string pattern = t.content;
    if (normalizer) normalizer->normalize(pattern);
    if (!pattern.empty()) v.trie_[1].insert(pattern, static_cast<int32_t>(k));
  }
  return v;
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

void AddedVocabulary::split(std::string_view text, bool normalized_set, bool parse_special,
                            std::vector<Segment>& out) const {
  const Trie& trie = trie_[normalized_set ? 1 : 0];
  auto emit_text = [&out](size_t b, size_t e) {
    if (e > b) out.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e), -1});
  };
  size_t done = 0;  // end of the last kept match
  if (!trie.nodes.empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      if (!trie.first_byte[static_cast<unsigned char>(text[pos])]) {
        ++pos;
        continue;
      }
      auto [index, len] = trie.longest_at(text, pos);
      if (index < 0) {
        ++pos;
        continue;
      }
      const AddedToken& t = tokens_[index];
      size_t start = pos, stop = pos + len;
      pos = stop;  // the scan resumes after this match whether it is kept or not
      if (t.special && !parse_special) continue;
      if (t.single_word) {
        bool word_before = start > 0 && is_rust_word_char(utf8_prev(text, start));
        size_t k = stop;
        bool word_after = stop < text.size() && is_rust_word_char(utf8_next(text, k));
        if (word_before || word_after) continue;
      }
      if (t.lstrip) {
        size_t s = start;
        while (s > done && is_white_space(utf8_prev(text, s))) {
          --s;
          while (s > done && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
        }
        start = s;
      }
      if (t.rstrip) {
        while (stop < text.size()) {
          size_t k = stop;
          if (!is_white_space(utf8_next(text, k))) break;
          stop = k;
        }
        pos = stop;
      }
      emit_text(done, start);
      out.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(stop), t.id});
      done = stop;
    }
  }
  emit_text(done, text.size());
}

}  // namespace difftx::tok
