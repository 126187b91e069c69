#include "engine/tokenizer/piece_index.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <functional>

#include "engine/tokenizer/vocab.h"  // printable_piece

namespace sluice::tokenizer {
namespace {

uint64_t hash_text(std::string_view text) { return std::hash<std::string_view>{}(text); }

// Slot count: a power of two at least twice `n`, so probes stay short.
uint64_t table_size(size_t n) { return std::bit_ceil(std::max<uint64_t>(16, uint64_t{n} * 2)); }

uint64_t mix(uint64_t key) {
  // splitmix64 finalizer: spreads the packed id pair over all bits.
  key ^= key >> 30;
  key *= 0xBF58476D1CE4E5B9ULL;
  key ^= key >> 27;
  key *= 0x94D049BB133111EBULL;
  key ^= key >> 31;
  return key;
}

}  // namespace

void PieceIndex::build(const std::vector<std::string>* pieces) {
  pieces_ = pieces;
  const uint64_t size = table_size(pieces->size());
  slots_.assign(size, Slot{});
  mask_ = size - 1;
  max_bytes_ = 0;
  for (size_t id = 0; id < pieces->size(); ++id) {
    std::string_view text = (*pieces)[id];
    if (text.empty()) continue;
    max_bytes_ = std::max(max_bytes_, text.size());
    uint64_t h = hash_text(text);
    auto h32 = static_cast<uint32_t>(h);
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s.hash = h32;
        s.id = static_cast<int32_t>(id);
        break;
      }
      if (s.hash == h32 && (*pieces)[s.id] == text) break;  // duplicate: keep the lower id
    }
  }
}

int32_t PieceIndex::find(std::string_view text) const {
  if (text.empty() || text.size() > max_bytes_) return -1;
  uint64_t h = hash_text(text);
  auto h32 = static_cast<uint32_t>(h);
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == h32 && (*pieces_)[s.id] == text) return s.id;
  }
}

Status MergeTable::build(const std::vector<std::pair<std::string, std::string>>& merges,
                         const PieceIndex& index, const std::string& name) {
  const uint64_t size = table_size(merges.size());
  slots_.assign(size, Entry{});
  mask_ = size - 1;
  count_ = 0;
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    int32_t left = index.find(a);
    int32_t right = index.find(b);
    joined.assign(a).append(b);
    int32_t result = index.find(joined);
    if (left < 0 || right < 0 || result < 0) {
      const char* what = left < 0    ? "its left part"
                         : right < 0 ? "its right part"
                                     : "the merged text";
      return Status::invalid_argument(
          fmt::format("{}: merge {} ('{}' + '{}'): {} is not a vocabulary piece", name, rank,
                      printable_piece(a), printable_piece(b), what));
    }
    uint64_t key = (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
    for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.key == kEmpty) {
        e = Entry{key, static_cast<int32_t>(rank), result};
        ++count_;
        break;
      }
      if (e.key == key) {
        return Status::invalid_argument(fmt::format("{}: merge {} ('{}' + '{}') repeats merge {}",
                                                    name, rank, printable_piece(a),
                                                    printable_piece(b), e.rank));
      }
    }
  }
  return Status::ok();
}

const MergeTable::Entry* MergeTable::find(int32_t left, int32_t right) const {
  if (count_ == 0) return nullptr;
  uint64_t key = (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    const Entry& e = slots_[i];
    if (e.key == kEmpty) return nullptr;
    if (e.key == key) return &e;
  }
}

void ByteFallback::emit(std::string_view bytes, std::vector<int32_t>* out) const {
  for (char c : bytes) {
    int32_t id = ids[static_cast<uint8_t>(c)];
    if (id < 0) id = unk_id;
    if (id >= 0) out->push_back(id);
  }
}

}  // namespace sluice::tokenizer
