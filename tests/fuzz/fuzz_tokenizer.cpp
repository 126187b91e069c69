// libFuzzer harness: the tokenizer on arbitrary bytes. The first input byte picks a mode:
//   0-7  encode the rest with one of two small fixed vocabularies (score SPM / rank BPE),
//        with or without special parsing and BOS, and check every id is in range, that
//        decoding never fails, and that valid UTF-8 round-trips;
//   8+   build a vocabulary from the rest (pieces split at '\0', each piece's first byte its
//        token type, at most 512 pieces of at most 64 bytes) and, when Tokenizer::create
//        accepts it, encode the same bytes with it; a rejection must be a one-line message.
// Must never crash, hang or trip a sanitizer.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace {

using namespace sluice::tokenizer;

constexpr std::string_view kSp = "\xE2\x96\x81";

TokenizerVocab base_vocab(ModelKind kind) {
  TokenizerVocab v;
  v.name = "fuzz";
  v.model = kind;
  auto add = [&v](std::string p, TokenType t, float score) {
    v.pieces.push_back(std::move(p));
    v.types.push_back(t);
    v.scores.push_back(score);
  };
  add("<pad>", TokenType::kControl, -1000);
  add("<eos>", TokenType::kControl, -1000);
  add("<bos>", TokenType::kControl, -1000);
  add("<unk>", TokenType::kUnknown, -1000);
  add("<start_of_turn>", TokenType::kControl, -1000);
  add("<start_of", TokenType::kUserDefined, -1000);  // overlaps the control token
  add("\n", TokenType::kUserDefined, -1000);
  add("  ", TokenType::kUserDefined, -1000);
  add("<unused0>", TokenType::kUnused, -1000);
  for (int b = 0; b < 256; ++b) add(byte_piece(static_cast<uint8_t>(b)), TokenType::kByte, 0);
  const char* normal[] = {"a", "b", "c", "ab", "bc", "abc", "aa", "aaaa", "\n\n", "\xC3\xA9"};
  float score = -1;
  for (const char* p : normal) add(p, TokenType::kNormal, score--);
  add(std::string(kSp), TokenType::kNormal, score--);
  add(std::string(kSp) + "a", TokenType::kNormal, score--);
  add(std::string(kSp) + std::string(kSp), TokenType::kNormal, score--);
  v.bos_id = 2;
  v.eos_id = 1;
  v.unk_id = 3;
  if (kind == ModelKind::kBpeMerges) {
    v.merges = {{"a", "b"},
                {"b", "c"},
                {"ab", "c"},
                {"a", "a"},
                {"aa", "aa"},
                {"\n", "\n"},
                {std::string(kSp), "a"},
                {std::string(kSp), std::string(kSp)}};
    v.pre_split = PreSplit::kNewlineRuns;
    v.whole_words = WholeWord::kNewlineRuns;
  }
  return v;
}

const Tokenizer& fixed(int which) {
  static std::unique_ptr<Tokenizer> spm =
      std::move(*Tokenizer::create(base_vocab(ModelKind::kSpmScores)));
  static std::unique_ptr<Tokenizer> bpe = [] {
    TokenizerVocab v = base_vocab(ModelKind::kBpeMerges);
    v.special_match = SpecialMatch::kLeftmostLongest;
    return std::move(*Tokenizer::create(std::move(v)));
  }();
  return which == 0 ? *spm : *bpe;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

void check_ids(const Tokenizer& t, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (id < 0 || id >= t.vocab_size()) std::abort();
  }
}

void fuzz_fixed(int mode, std::string_view text) {
  const Tokenizer& t = fixed(mode & 1);
  const bool parse_special = (mode & 2) != 0;
  const bool add_bos = (mode & 4) != 0;
  std::vector<int32_t> ids = t.encode(text, add_bos, parse_special);
  check_ids(t, ids);
  if (add_bos && (ids.empty() || ids[0] != t.bos_id())) std::abort();
  std::string back = t.decode(ids, /*render_special=*/true);
  (void)t.decode(ids, false);
  // Valid UTF-8 without a literal U+2581 (which decodes as a space) comes back unchanged;
  // the BOS renders as its text.
  if (valid_utf8(text) && text.find(kSp) == std::string_view::npos) {
    std::string want = add_bos ? "<bos>" + std::string(text) : std::string(text);
    if (back != want) std::abort();
  }
}

void fuzz_vocab(std::string_view data) {
  TokenizerVocab v;
  v.name = "fuzz-vocab";
  v.model = (data.size() % 2) ? ModelKind::kBpeMerges : ModelKind::kSpmScores;
  size_t start = 0;
  while (start <= data.size() && v.pieces.size() < 512) {
    size_t end = data.find('\0', start);
    if (end == std::string_view::npos) end = data.size();
    std::string_view piece = data.substr(start, end - start);
    uint8_t type = piece.empty() ? 1 : static_cast<uint8_t>(piece[0]) % 8;  // 0 and 7 invalid
    // NOTE: pieces are capped at 64 bytes: a special token of length L costs up to L steps
    // per input byte to match, so vocabulary-sized pieces would only measure that.
    v.pieces.emplace_back(piece.empty() ? piece : piece.substr(1, 64));
    v.types.push_back(static_cast<TokenType>(type));
    v.scores.push_back(static_cast<float>(v.pieces.size() % 17) - 8);
    start = end + 1;
  }
  if (v.model == ModelKind::kBpeMerges) {
    for (size_t i = 0; i + 1 < v.pieces.size() && v.merges.size() < 64; i += 2) {
      v.merges.emplace_back(v.pieces[i], v.pieces[i + 1]);
    }
  }
  v.bos_id = v.pieces.empty() ? -1 : static_cast<int32_t>(data.size() % (v.pieces.size() + 1)) - 1;
  auto t = Tokenizer::create(std::move(v));
  if (!t.is_ok()) {
    const std::string& m = t.status().message();
    if (m.find('\n') != std::string::npos || m.rfind("fuzz-vocab: ", 0) != 0) std::abort();
    return;
  }
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = (*t)->encode(data, special, special);
    check_ids(**t, ids);
    (void)(*t)->decode(ids, special);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] < 8) {
    fuzz_fixed(data[0], rest);
  } else {
    fuzz_vocab(rest);
  }
  return 0;
}
