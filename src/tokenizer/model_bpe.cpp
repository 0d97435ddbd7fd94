#include "tokenizer/model_bpe.h"

#include <algorithm>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

namespace {
constexpr size_t kMaxVocabGap = 65536;  // ids a vocabulary may skip in all
}  // namespace

namespace {

constexpr size_t kCacheCapacity = 1 << 16;  // pieces per cache
constexpr size_t kCacheMaxPieceBytes = 256;  // tokenizers' MAX_LENGTH for its word cache

}  // namespace

void PairMap::reserve(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  size_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmpty) insert(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu), s.value);
}

void PairMap::insert(int32_t left, int32_t right, Value value) {
  if ((size_ + 1) * 2 > slots_.size()) reserve(size_ + 1);
  uint64_t key = make_key(left, right);
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) {
      s.value = value;
      return;
    }
    if (s.key == kEmpty) {
      s.key = key;
      s.value = value;
      ++size_;
      return;
    }
  }
}

BpeCache::BpeCache(size_t capacity) : capacity_(capacity) {
  size_t slots = 16;
  while (slots < capacity * 2) slots *= 2;  // load factor at most 1/2
  slots_.assign(slots, 0);
  mask_ = slots - 1;
}

void BpeCache::put(std::string_view piece, const int32_t* ids, size_t count) {
  if (size_ >= capacity_) {
    std::fill(slots_.begin(), slots_.end(), 0);
    entries_.clear();
    size_ = 0;
  }
  const uint64_t offset = entries_.size();
  entries_.push_back(static_cast<uint32_t>(piece.size()));
  entries_.push_back(static_cast<uint32_t>(count));
  for (size_t k = 0; k < count; ++k) entries_.push_back(static_cast<uint32_t>(ids[k]));
  const size_t key_at = entries_.size();
  entries_.resize(key_at + (piece.size() + 3) / 4, 0);
  std::memcpy(entries_.data() + key_at, piece.data(), piece.size());
  const uint64_t h = hash_bytes(piece);
  size_t i = h & mask_;
  while (slots_[i] != 0) i = (i + 1) & mask_;
  slots_[i] = (((h >> 32) | 1) << 32) | offset;
  ++size_;
}

BpeModel::CacheLease::CacheLease(const BpeModel& model) : model_(model) {
  {
    std::lock_guard<std::mutex> lock(model_.pool_mutex_);
    if (!model_.pool_.empty()) {
      cache_ = std::move(model_.pool_.back());
      model_.pool_.pop_back();
    }
  }
  if (!cache_) cache_ = std::make_unique<BpeCache>(kCacheCapacity);
}

BpeModel::CacheLease::~CacheLease() {
  std::lock_guard<std::mutex> lock(model_.pool_mutex_);
  model_.pool_.push_back(std::move(cache_));
}

std::unique_ptr<BpeModel> BpeModel::from_json(const JsonRef& model) {
  model.expect_object();
  std::string type = model.at("type").as_string();
  if (type != "BPE") model.fail_type(type, "BPE");
  model.expect_keys({"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
                     "byte_fallback", "ignore_merges", "vocab", "merges"});
  if (auto dropout = model.find("dropout"); dropout && dropout->as_number() != 0.0)
    dropout->fail("must be null: BPE dropout (random merges) is not supported, since encoding must be reproducible");

  std::unique_ptr<BpeModel> m(new BpeModel());
  m->prefix_ = model.get_string("continuing_subword_prefix").value_or("");
  m->suffix_ = model.get_string("end_of_word_suffix").value_or("");
  m->fuse_unk_ = model.get_bool("fuse_unk", false);
  m->byte_fallback_ = model.get_bool("byte_fallback", false);
  m->ignore_merges_ = model.get_bool("ignore_merges", false);

  // vocab
  JsonRef vocab = model.at("vocab");
  vocab.expect_object();
  m->token_to_id_ = StringTable(vocab.value().size());
  for (auto it = vocab.value().begin(); it != vocab.value().end(); ++it) {
    const std::string& token = it.key();
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX)
      JsonRef(*it, vocab.label(), vocab.where() + "[\"" + token + "\"]").fail("must be an id from 0 to 2147483647");
    int32_t id = static_cast<int32_t>(it->get<int64_t>());
    if (utf8_find_invalid(token) != kValidUtf8) vocab.fail(fmt::format("has a token with id {} that is not valid UTF-8", id));
    // Ids index a dense table: a few gaps are fine, a huge id in a small file must not make it huge.
    if (static_cast<size_t>(id) >= vocab.value().size() + kMaxVocabGap)
      JsonRef(*it, vocab.label(), vocab.where() + "[\"" + token + "\"]")
          .fail(fmt::format("is id {}, but model.vocab has only {} entries: ids must be below entries + {} (a "
                            "vocabulary is numbered from 0 without large gaps)",
                            id, vocab.value().size(), kMaxVocabGap));
    if (static_cast<size_t>(id) >= m->id_to_token_.size()) {
      m->id_to_token_.resize(static_cast<size_t>(id) + 1);
      m->has_id_.resize(static_cast<size_t>(id) + 1, false);
    }
    if (m->has_id_[id])
      vocab.fail(fmt::format("gives id {} to both \"{}\" and \"{}\"", id, m->id_to_token_[id], token));
    m->has_id_[id] = true;
    m->id_to_token_[id] = token;
    m->token_to_id_.insert(token, static_cast<uint64_t>(id));
  }

  // One-character tokens, for the first step of every piece.
  m->char_ids_.assign(0x10000, -1);
  m->token_to_id_.for_each([&m](std::string_view token, uint64_t id) {
    size_t i = 0;
    char32_t cp = utf8_next(token, i);
    if (i == token.size() && cp < 0x10000) m->char_ids_[cp] = static_cast<int32_t>(id);
  });
  for (int b = 0; b < 256; ++b) {
    auto id = m->token_to_id(fmt::format("<0x{:02X}>", b));
    m->byte_ids_[b] = id ? *id : -1;
  }

  if (auto unk = model.find("unk_token")) {
    std::string token = unk->as_string();
    auto id = m->token_to_id(token);
    if (!id) unk->fail(fmt::format("\"{}\" is not in model.vocab", token));
    m->unk_id_ = *id;
  }

  // Can a piece be cut before "\u2581" (see model_bpe.h)?
  constexpr std::string_view kMeta = "\u2581";
  if (m->prefix_.empty() && m->suffix_.empty() && !m->ignore_merges_ && m->token_to_id(kMeta)) {
    bool joins = false;
    m->token_to_id_.for_each([&joins, kMeta](std::string_view token, uint64_t) {
      for (size_t at = token.find(kMeta, 1); !joins && at != std::string_view::npos; at = token.find(kMeta, at + 1))
        joins = !(at >= kMeta.size() && token.substr(at - kMeta.size(), kMeta.size()) == kMeta);
    });
    m->cut_at_metaspace_ = !joins;
  }

  // merges
  JsonRef merges = model.at("merges");
  const size_t count = merges.array_size();
  m->merges_.reserve(count);
  std::string merged;
  for (size_t i = 0; i < count; ++i) {
    const json& item = merges.value()[i];
    std::string_view a, b;
    if (item.is_string()) {
      const std::string& s = item.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        merges[i].fail(fmt::format("\"{}\" must be two tokens separated by one space", s));
      a = std::string_view(s).substr(0, space);
      b = std::string_view(s).substr(space + 1);
    } else if (item.is_array() && item.size() == 2 && item[0].is_string() && item[1].is_string()) {
      a = item[0].get_ref<const std::string&>();
      b = item[1].get_ref<const std::string&>();
    } else {
      merges[i].fail("must be a string \"a b\" or a pair [\"a\", \"b\"]");
    }
    auto ia = m->token_to_id(a), ib = m->token_to_id(b);
    if (!ia) merges[i].fail(fmt::format("uses \"{}\", which is not in model.vocab", a));
    if (!ib) merges[i].fail(fmt::format("uses \"{}\", which is not in model.vocab", b));
    if (b.size() < m->prefix_.size())
      merges[i].fail(fmt::format("\"{}\" is shorter than continuing_subword_prefix", b));
    merged.assign(a);
    merged.append(b.substr(m->prefix_.size()));
    auto im = m->token_to_id(merged);
    if (!im) merges[i].fail(fmt::format("makes \"{}\", which is not in model.vocab", merged));
    m->merges_.insert(*ia, *ib, {static_cast<uint32_t>(i), *im});
  }
  return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const uint64_t* id = token_to_id_.find(token);
  if (!id) return std::nullopt;
  return static_cast<int32_t>(*id);
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

int32_t BpeModel::symbol_id(std::string_view word, size_t begin, size_t end, std::string& scratch) const {
  const bool first = begin == 0, last = end == word.size();
  if ((first || prefix_.empty()) && (!last || suffix_.empty())) {
    size_t i = begin;
    char32_t cp = utf8_next(word, i);
    if (cp < 0x10000) return char_ids_[cp];
    const uint64_t* id = token_to_id_.find(word.substr(begin, end - begin));
    return id ? static_cast<int32_t>(*id) : -1;
  }
  scratch.clear();
  if (!first) scratch += prefix_;
  scratch.append(word.substr(begin, end - begin));
  if (last) scratch += suffix_;
  const uint64_t* id = token_to_id_.find(scratch);
  return id ? static_cast<int32_t>(*id) : -1;
}

bool BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out, DroppedText* dropped) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the list, -1 at the ends
    uint32_t len;        // bytes covered; 0 once merged into the symbol on its left
  };
  // Per-thread buffers keep their capacity between words (most words are short and cache misses
  // are frequent while a new corpus starts).
  thread_local std::vector<Symbol> syms;
  syms.clear();
  auto add = [](int32_t id, uint32_t len) {
    int32_t index = static_cast<int32_t>(syms.size());
    if (index > 0) syms.back().next = index;
    syms.push_back({id, index - 1, -1, len});
  };

  // Characters to initial symbols (tokenizers' BPE::merge_word).
  thread_local std::string scratch;
  int32_t pending_unk_len = 0;  // bytes of unknown characters not yet emitted as unk
  bool dropped_any = false;
  for (size_t i = 0; i < word.size();) {
    size_t begin = i;
    i += utf8_seq_len(static_cast<unsigned char>(word[i]));
    int32_t id = symbol_id(word, begin, i, scratch);
    if (id >= 0) {
      if (pending_unk_len > 0) {
        add(*unk_id_, static_cast<uint32_t>(pending_unk_len));
        pending_unk_len = 0;
      }
      add(id, static_cast<uint32_t>(i - begin));
      continue;
    }
    if (byte_fallback_) {
      // The bytes of the symbol as it was looked up, prefix and suffix included.
      std::string_view bytes = word.substr(begin, i - begin);
      if (!prefix_.empty() || !suffix_.empty()) {
        scratch.clear();
        if (begin != 0) scratch += prefix_;
        scratch.append(bytes);
        if (i == word.size()) scratch += suffix_;
        bytes = scratch;
      }
      bool all = true;
      for (char c : bytes) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // Like tokenizers, byte tokens do not flush a pending unk: it follows them.
        for (char c : bytes) add(byte_ids_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk_len > 0 && !fuse_unk_) {
        add(*unk_id_, static_cast<uint32_t>(pending_unk_len));
        pending_unk_len = 0;
      }
      pending_unk_len += static_cast<int32_t>(i - begin);
    }
    // No unk token and no byte fallback: the character is dropped (tokenizers does the same).
    if (!unk_id_) {
      dropped_any = true;
      if (dropped) dropped->add(word.substr(begin, i - begin));
    }
  }
  if (pending_unk_len > 0) add(*unk_id_, static_cast<uint32_t>(pending_unk_len));
  if (syms.empty()) return dropped_any;

  if (syms.size() > 1) {
    struct Candidate {
      uint32_t rank;
      int32_t pos;
      int32_t new_id;
    };
    // std heap functions keep the largest element first; "larger" here means lower rank, then
    // leftmost position, so the top is the merge tokenizers applies next.
    auto after = [](const Candidate& x, const Candidate& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
    thread_local std::vector<Candidate> heap;
    heap.clear();
    for (size_t k = 0; k + 1 < syms.size(); ++k)
      if (const PairMap::Value* v = merges_.find(syms[k].id, syms[k + 1].id))
        heap.push_back({v->rank, static_cast<int32_t>(k), v->id});
    std::make_heap(heap.begin(), heap.end(), after);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), after);
      Candidate top = heap.back();
      heap.pop_back();
      Symbol& left = syms[top.pos];
      if (left.len == 0 || left.next < 0) continue;
      Symbol& right = syms[left.next];
      // Skip stale entries: the pair at this position changed since the entry was pushed.
      const PairMap::Value* now = merges_.find(left.id, right.id);
      if (!now || now->id != top.new_id) continue;
      left.id = top.new_id;
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (left.next >= 0) syms[left.next].prev = top.pos;
      if (left.prev >= 0) {
        if (const PairMap::Value* v = merges_.find(syms[left.prev].id, left.id)) {
          heap.push_back({v->rank, left.prev, v->id});
          std::push_heap(heap.begin(), heap.end(), after);
        }
      }
      if (left.next >= 0) {
        if (const PairMap::Value* v = merges_.find(left.id, syms[left.next].id)) {
          heap.push_back({v->rank, top.pos, v->id});
          std::push_heap(heap.begin(), heap.end(), after);
        }
      }
    }
  }
  for (int32_t k = 0; k >= 0; k = syms[k].next) out.push_back(syms[k].id);
  return dropped_any;
}

void BpeModel::tokenize(std::string_view piece, std::vector<int32_t>& out, BpeCache* cache,
                        DroppedText* dropped) const {
  if (!cut_at_metaspace_) {
    tokenize_part(piece, out, cache, dropped);
    return;
  }
  constexpr std::string_view kMeta = "\u2581";
  size_t start = 0;
  for (size_t at = piece.find(kMeta, 1); at != std::string_view::npos; at = piece.find(kMeta, at + kMeta.size())) {
    if (at >= kMeta.size() && piece.substr(at - kMeta.size(), kMeta.size()) == kMeta) continue;  // inside a run
    tokenize_part(piece.substr(start, at - start), out, cache, dropped);
    start = at;
  }
  tokenize_part(piece.substr(start), out, cache, dropped);
}

void BpeModel::tokenize_part(std::string_view piece, std::vector<int32_t>& out, BpeCache* cache,
                             DroppedText* dropped) const {
  if (piece.empty()) return;
  // The cache holds whole results (ignore_merges included), so it is asked first: it is small and
  // hot, the vocab is large.
  const bool cacheable = cache && piece.size() < kCacheMaxPieceBytes;
  if (cacheable && cache->append(piece, out)) return;
  size_t before = out.size();
  const uint64_t* whole = ignore_merges_ ? token_to_id_.find(piece) : nullptr;
  if (whole) out.push_back(static_cast<int32_t>(*whole));
  else if (merge_word(piece, out, dropped)) return;  // not cached: the next occurrence counts its drops too
  if (cacheable) cache->put(piece, out.data() + before, out.size() - before);
}

void BpeModel::tokenize_reference(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  const uint64_t* whole = ignore_merges_ ? token_to_id_.find(piece) : nullptr;
  if (whole) out.push_back(static_cast<int32_t>(*whole));
  else merge_word(piece, out);
}

}  // namespace difftx::tok
