#include "strings.h"

#include <sched.h>
#include <sys/mman.h>

#include <cstring>

namespace leakscope {

namespace {

constexpr uint64_t kTagMask = ~uint64_t(3);
constexpr uint64_t kWriting = 1;
constexpr uint64_t kReady = 2;
// A string that finds no slot this close to its home is dropped.
constexpr uint32_t kMaxProbe = 256;

// Address space only: pages are touched as strings arrive.
void* reserve(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

size_t total_length(const std::string_view* parts, size_t n) {
  size_t length = 0;
  for (size_t i = 0; i < n; ++i) length += parts[i].size();
  return length < StringTable::kMaxLength ? length : StringTable::kMaxLength;
}

// Copies the first `length` bytes of the concatenated parts.
void copy_parts(char* to, const std::string_view* parts, size_t n, size_t length) {
  for (size_t i = 0; i < n && length > 0; ++i) {
    const size_t take = parts[i].size() < length ? parts[i].size() : length;
    memcpy(to, parts[i].data(), take);
    to += take;
    length -= take;
  }
}

bool equal_parts(const char* text, size_t text_length, const std::string_view* parts, size_t n, size_t length) {
  if (text_length != length) return false;
  for (size_t i = 0; i < n && length > 0; ++i) {
    const size_t take = parts[i].size() < length ? parts[i].size() : length;
    if (memcmp(text, parts[i].data(), take) != 0) return false;
    text += take;
    length -= take;
  }
  return true;
}

// FNV-1a over the (cut) concatenation; never 0 in the tag bits.
uint64_t hash_parts(const std::string_view* parts, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t left = total_length(parts, n);
  for (size_t i = 0; i < n && left > 0; ++i)
    for (size_t k = 0; k < parts[i].size() && left > 0; ++k, --left) {
      h ^= uint8_t(parts[i][k]);
      h *= 0x100000001b3ull;
    }
  return (h & kTagMask) == 0 ? 4 : h;
}

}  // namespace

bool StringTable::init(uint32_t slot_bits, size_t arena_bytes) {
  const uint32_t capacity = 1u << slot_bits;
  auto* entries = static_cast<Entry*>(reserve(sizeof(Entry) * capacity));
  auto* arena = static_cast<char*>(reserve(arena_bytes));
  if (entries == nullptr || arena == nullptr) return false;
  entries_ = entries;
  arena_ = arena;
  arena_bytes_ = arena_bytes;
  capacity_ = capacity;
  return true;
}

uint32_t StringTable::intern(const std::string_view* parts, size_t n) {
  if (entries_ == nullptr) return 0;
  const size_t length = total_length(parts, n);
  const uint64_t hash = hash_parts(parts, n);
  const uint64_t key = hash & kTagMask;
  const uint32_t mask = capacity_ - 1;
  uint32_t index = uint32_t(hash >> 32) & mask;
  for (uint32_t probe = 0; probe < kMaxProbe && probe < capacity_; ++probe, index = (index + 1) & mask) {
    Entry& e = entries_[index];
    uint64_t tag = e.tag.load(std::memory_order_acquire);
    if (tag == 0) {
      // Room for the text first, so a claimed slot always gets its text.
      const size_t at = arena_used_.fetch_add(length + 1, std::memory_order_relaxed);
      if (at + length + 1 > arena_bytes_) return 0;
      if (e.tag.compare_exchange_strong(tag, key | kWriting, std::memory_order_acq_rel)) {
        copy_parts(arena_ + at, parts, n, length);
        arena_[at + length] = '\0';
        e.offset = uint32_t(at);
        e.length = uint32_t(length);
        e.tag.store(key | kReady, std::memory_order_release);
        return index + 1;
      }
      // Lost the slot to another string: its bytes in the arena stay unused.
    }
    if ((tag & kTagMask) != key) continue;
    // Same hash: wait for the writer (it copies at most kMaxLength bytes).
    while ((tag & ~kTagMask) == kWriting) {
      sched_yield();
      tag = e.tag.load(std::memory_order_acquire);
    }
    if (equal_parts(arena_ + e.offset, e.length, parts, n, length)) return index + 1;
  }
  return 0;
}

std::string_view StringTable::text(uint32_t index) const {
  if (index == 0 || index > capacity_) return {};
  const Entry& e = entries_[index - 1];
  if ((e.tag.load(std::memory_order_acquire) & ~kTagMask) != kReady) return {};
  return std::string_view(arena_ + e.offset, e.length);
}

}  // namespace leakscope
