// Interned strings for task kinds, spawn sites and names: the ABI's callers
// may free their strings, so the agent keeps its own copy once, in a fixed
// arena. Lookups are lock-free; a new string claims its slot with one CAS and
// is visible once its text is written. When the table or its arena is full,
// intern() answers 0 and the caller counts the drop.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace leakscope {

class StringTable {
 public:
  static constexpr size_t kMaxLength = 255;  // longer strings are cut here

  // Reserves (without touching) room for 2^slot_bits strings and
  // `arena_bytes` of text. Runs once, before any intern().
  bool init(uint32_t slot_bits, size_t arena_bytes);
  // Any thread. The index (≥ 1) of the string `parts[0] + … + parts[n-1]`,
  // or 0 when full or not initialised.
  uint32_t intern(const std::string_view* parts, size_t n);
  uint32_t intern(std::string_view text) { return intern(&text, 1); }
  // Any thread; `index` must come from intern().
  std::string_view text(uint32_t index) const;
  // One past the largest index intern() can return.
  uint32_t index_limit() const { return capacity_ + 1; }

 private:
  struct Entry {
    // 0 empty; (hash & ~3) | 1 while its text is written; (hash & ~3) | 2 ready.
    std::atomic<uint64_t> tag;
    uint32_t offset;
    uint32_t length;
  };

  Entry* entries_ = nullptr;
  char* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  std::atomic<size_t> arena_used_{0};
  uint32_t capacity_ = 0;
};

}  // namespace leakscope
