// A hash table from byte strings to 64-bit values for the hot lookups of encoding (the vocab, the
// per-piece cache): open addressing with linear probing, keys stored back to back in one buffer,
// so a lookup is one slot probe plus one key comparison in the common case, where
// std::unordered_map follows a heap node per bucket.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace difftx::tok {

// 64-bit hash of a byte string (multiply-xorshift over 8-byte words).
inline uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(n) * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
  }
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

class StringTable {
 public:
  explicit StringTable(size_t expected = 0) { rehash(expected); }

  // The value of `key`, or nullptr.
  const uint64_t* find(std::string_view key) const {
    const uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.offset == kEmpty) return nullptr;
      if (s.hash == h && s.length == key.size() && std::memcmp(keys_.data() + s.offset, key.data(), key.size()) == 0)
        return &s.value;
    }
  }

  // Inserts `key` or replaces its value. Returns false when the key was already there.
  bool insert(std::string_view key, uint64_t value) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(2 * size_ + 2);
    const uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.offset == kEmpty) {
        s.hash = h;
        s.offset = static_cast<uint32_t>(keys_.size());
        s.length = static_cast<uint32_t>(key.size());
        s.value = value;
        keys_.append(key);
        ++size_;
        return true;
      }
      if (s.hash == h && s.length == key.size() && std::memcmp(keys_.data() + s.offset, key.data(), key.size()) == 0) {
        s.value = value;
        return false;
      }
    }
  }

  size_t size() const { return size_; }
  // Bytes of key storage (for callers that bound memory).
  size_t key_bytes() const { return keys_.size(); }

  // Removes every entry, keeping the slot array.
  void clear() {
    for (Slot& s : slots_) s.offset = kEmpty;
    keys_.clear();
    size_ = 0;
  }

  // Calls f(key, value) for every entry, in no particular order.
  template <class F>
  void for_each(F f) const {
    for (const Slot& s : slots_)
      if (s.offset != kEmpty) f(std::string_view(keys_.data() + s.offset, s.length), s.value);
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = kEmpty;  // into keys_; kEmpty marks a free slot
    uint32_t length = 0;
    uint64_t value = 0;
  };
  // Grows to hold at least `count` entries at a load of at most 3/4.
  void rehash(size_t count) {
    size_t capacity = 16;
    while (capacity * 3 < (count + 1) * 4) capacity *= 2;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.offset == kEmpty) continue;
      for (size_t i = s.hash & mask_;; i = (i + 1) & mask_) {
        if (slots_[i].offset == kEmpty) {
          slots_[i] = s;
          break;
        }
      }
    }
  }

  std::vector<Slot> slots_;
  std::string keys_;
  size_t size_ = 0, mask_ = 0;
};

}  // namespace difftx::tok
