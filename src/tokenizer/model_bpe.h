// tokenizer.json "model" of type BPE (tokenizers/src/models/bpe/): splits one piece of text into
// vocabulary ids by applying merges in rank order.
//
// Keys: vocab {token: id}; merges ["a b", ...] or [["a", "b"], ...] (rank = list index; a pair
// listed twice keeps its last rank, like tokenizers); ignore_merges (a piece that is itself in the
// vocab becomes that one id); byte_fallback (an unknown character becomes its <0xXX> byte tokens
// when all exist); unk_token + fuse_unk (otherwise the unknown character becomes unk_token, runs
// fused into one when fuse_unk); continuing_subword_prefix, end_of_word_suffix; dropout must be
// null (or 0). Without unk_token and byte fallback an unknown character is dropped, as tokenizers does.
//
// Merge order (tokenizers' Word::merge_all): repeatedly merge the adjacent pair with the lowest
// rank, the leftmost one among equal ranks. Done with a binary heap over a linked list of symbols:
// O(n log n) for a piece of n characters. Pieces up to 256 bytes are cached per encode call.
//
// SentencePiece-style tokenizers (Mistral, Llama-2) have no pre-tokenizer, so a piece is a whole
// text. When no vocab token has "\u2581" right after a different character (checked at load, and
// only without prefix/suffix/ignore_merges), no merge can join across the point before such a
// "\u2581", so the piece is cut there and the parts (words) are merged and cached separately: the
// same ids as merging the whole text, without its O(n log n) heap and with cache hits.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/dropped_text.h"
#include "tokenizer/json_ref.h"
#include "tokenizer/string_table.h"

namespace difftx::tok {

// Merge table keyed by a pair of token ids: open addressing, linear probing.
class PairMap {
 public:
  struct Value {
    uint32_t rank = 0;
    int32_t id = -1;  // the merged token
  };
  void reserve(size_t count);
  void insert(int32_t left, int32_t right, Value value);  // replaces an existing entry
  const Value* find(int32_t left, int32_t right) const {
    uint64_t key = make_key(left, right);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t make_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(k ^ (k >> 29));
  }
  struct Slot {
    uint64_t key = kEmpty;
    Value value;
  };
  std::vector<Slot> slots_ = std::vector<Slot>(1);
  size_t mask_ = 0, size_ = 0;
};

// Results of recent pieces: piece text -> ids, for up to `capacity` pieces, then emptied.
// Compact for the hot path: an 8-byte slot per entry (hash tag, offset) and each entry's ids and
// key side by side in one array, so a hit touches two cache lines.
class BpeCache {
 public:
  explicit BpeCache(size_t capacity);
  // Appends the cached ids of `piece` to `out`; false when not cached.
  bool append(std::string_view piece, std::vector<int32_t>& out) const {
    const uint64_t h = hash_bytes(piece);
    const uint64_t tag = (h >> 32) | 1;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t slot = slots_[i];
      if (slot == 0) return false;
      if ((slot >> 32) != tag) continue;
      const uint32_t* e = entries_.data() + (slot & 0xFFFFFFFFu);
      if (e[0] == piece.size() && std::memcmp(e + 2 + e[1], piece.data(), piece.size()) == 0) {
        const auto* ids = reinterpret_cast<const int32_t*>(e + 2);
        out.insert(out.end(), ids, ids + e[1]);
        return true;
      }
    }
  }
  // Caches ids for a piece that is not cached yet.
  void put(std::string_view piece, const int32_t* ids, size_t count);

 private:
  size_t capacity_, size_ = 0, mask_;
  std::vector<uint64_t> slots_;    // (hash tag << 32) | entry offset; 0 = free
  std::vector<uint32_t> entries_;  // per entry: key bytes, id count, ids, key (padded to 4 bytes)
};

class BpeModel {
 public:
  // Builds the model from tokenizer.json's "model" object. Throws ConfigError naming the JSON path:
  // unknown key, a type other than BPE, dropout set, an id reused or negative, a merge whose tokens
  // or result are not in the vocab, unk_token not in the vocab.
  static std::unique_ptr<BpeModel> from_json(const JsonRef& model);

  // Appends the ids of `piece` (valid UTF-8) to `out`. `cache` may be null. Characters the model
  // drops (no token, no unk, no byte fallback) are counted into `dropped` when it is not null
  // (pieces that drop something are never cached, so every occurrence counts).
  void tokenize(std::string_view piece, std::vector<int32_t>& out, BpeCache* cache,
                DroppedText* dropped = nullptr) const;
  // The same ids computed the plain way: no cut before "\u2581", no cache (for tests).
  void tokenize_reference(std::string_view piece, std::vector<int32_t>& out) const;
  bool cuts_at_metaspace() const { return cut_at_metaspace_; }

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of `id`, or nullptr when the vocab has no such id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocab.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }
  size_t vocab_size() const { return token_to_id_.size(); }
  size_t merge_count() const { return merges_.size(); }

  // A cache for one encode call at a time; returned to the model's pool when the lease ends, so
  // concurrent encodes each get their own and no locking happens per piece.
  class CacheLease {
   public:
    explicit CacheLease(const BpeModel& model);
    ~CacheLease();
    CacheLease(const CacheLease&) = delete;
    CacheLease& operator=(const CacheLease&) = delete;
    BpeCache* get() { return cache_.get(); }

   private:
    const BpeModel& model_;
    std::unique_ptr<BpeCache> cache_;
  };

 private:
  BpeModel() = default;
  void tokenize_part(std::string_view piece, std::vector<int32_t>& out, BpeCache* cache, DroppedText* dropped) const;
  // Returns whether a character was dropped.
  bool merge_word(std::string_view word, std::vector<int32_t>& out, DroppedText* dropped = nullptr) const;
  int32_t symbol_id(std::string_view word, size_t begin, size_t end, std::string& scratch) const;

  StringTable token_to_id_;  // token -> id
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  PairMap merges_;
  std::vector<int32_t> char_ids_;  // code point (< 0x10000) -> id of the one-character token, or -1
  int32_t byte_ids_[256];          // <0xXX> token ids for byte fallback, -1 when absent
  std::optional<int32_t> unk_id_;
  std::string prefix_, suffix_;    // continuing_subword_prefix, end_of_word_suffix
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  bool cut_at_metaspace_ = false;  // see the header comment

  mutable std::mutex pool_mutex_;
  mutable std::vector<std::unique_ptr<BpeCache>> pool_;
};

}  // namespace difftx::tok
