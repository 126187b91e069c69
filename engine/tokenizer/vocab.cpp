#include "engine/tokenizer/vocab.h"

#include <fmt/format.h>

namespace sluice::tokenizer {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool known_type(TokenType t) {
  auto v = static_cast<uint8_t>(t);
  return v >= static_cast<uint8_t>(TokenType::kNormal) &&
         v <= static_cast<uint8_t>(TokenType::kByte);
}

}  // namespace

std::string printable_piece(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 40; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 40) out += "...";
  return out;
}

namespace {

Status check_special_id(const TokenizerVocab& v, const char* field, int32_t id) {
  if (id == -1) return Status::ok();
  if (id < 0 || static_cast<size_t>(id) >= v.pieces.size()) {
    return Status::invalid_argument(fmt::format("{}: {} is {} but the vocabulary has {} pieces",
                                                v.name, field, id, v.pieces.size()));
  }
  return Status::ok();
}

}  // namespace

std::optional<uint8_t> parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece[0] != '<' || piece[1] != '0' || piece[2] != 'x' ||
      piece[5] != '>') {
    return std::nullopt;
  }
  int hi = hex_value(piece[3]);
  int lo = hex_value(piece[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

std::string byte_piece(uint8_t byte) { return fmt::format("<0x{:02X}>", byte); }

Status validate_vocab(const TokenizerVocab& v) {
  const size_t n = v.pieces.size();
  if (n == 0) return Status::invalid_argument(fmt::format("{}: the vocabulary is empty", v.name));
  if (n > kMaxVocabSize) {
    return Status::invalid_argument(fmt::format(
        "{}: vocabulary has {} pieces, more than the limit {}", v.name, n, kMaxVocabSize));
  }
  if (!v.scores.empty() && v.scores.size() != n) {
    return Status::invalid_argument(fmt::format(
        "{}: {} scores for {} pieces; the counts must agree", v.name, v.scores.size(), n));
  }
  if (!v.types.empty() && v.types.size() != n) {
    return Status::invalid_argument(fmt::format(
        "{}: {} token types for {} pieces; the counts must agree", v.name, v.types.size(), n));
  }
  if (v.merges.size() > kMaxMerges) {
    return Status::invalid_argument(
        fmt::format("{}: {} merges, more than the limit {}", v.name, v.merges.size(), kMaxMerges));
  }
  if (v.model == ModelKind::kSpmScores && !v.merges.empty()) {
    return Status::invalid_argument(
        fmt::format("{}: {} merges given for a score-based (SentencePiece) model, which uses none",
                    v.name, v.merges.size()));
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = v.pieces[i];
    if (p.size() > kMaxPieceBytes) {
      return Status::invalid_argument(fmt::format(
          "{}: piece {} is {} bytes, more than the limit {}", v.name, i, p.size(), kMaxPieceBytes));
    }
    if (v.types.empty()) continue;
    TokenType t = v.types[i];
    if (!known_type(t)) {
      return Status::invalid_argument(
          fmt::format("{}: piece {} ('{}') has token type {}; expected 1 (normal) to 6 (byte)",
                      v.name, i, printable_piece(p), static_cast<int>(t)));
    }
    if (t == TokenType::kByte && !parse_byte_piece(p)) {
      return Status::invalid_argument(
          fmt::format("{}: piece {} has type BYTE but its text '{}' is not of the form <0xAB>",
                      v.name, i, printable_piece(p)));
    }
  }
  if (!v.scores.empty()) {
    for (size_t i = 0; i < n; ++i) {
      if (v.scores[i] != v.scores[i]) {  // NaN would break the heap's ordering
        return Status::invalid_argument(fmt::format("{}: score of piece {} is NaN", v.name, i));
      }
    }
  }
  SLUICE_RETURN_IF_ERROR(check_special_id(v, "bos id", v.bos_id));
  SLUICE_RETURN_IF_ERROR(check_special_id(v, "eos id", v.eos_id));
  SLUICE_RETURN_IF_ERROR(check_special_id(v, "unknown-token id", v.unk_id));
  SLUICE_RETURN_IF_ERROR(check_special_id(v, "padding id", v.pad_id));
  if (v.add_bos && v.bos_id < 0) {
    return Status::invalid_argument(
        fmt::format("{}: add_bos is set but the vocabulary has no bos id", v.name));
  }
  return Status::ok();
}

}  // namespace sluice::tokenizer
