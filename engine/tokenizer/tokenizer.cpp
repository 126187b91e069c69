#include "engine/tokenizer/tokenizer.h"

#include "engine/tokenizer/encoders.h"

namespace sluice::tokenizer {
namespace {

// Appends `text` with every ' ' replaced by U+2581.
void append_escaped(std::string_view text, std::string* out) {
  for (char c : text) {
    if (c == ' ') {
      out->append(kSpaceEscape);
    } else {
      out->push_back(c);
    }
  }
}

// Appends `piece` with every U+2581 replaced by ' '.
void append_unescaped(std::string_view piece, std::string* out) {
  size_t start = 0;
  for (;;) {
    size_t pos = piece.find(kSpaceEscape, start);
    if (pos == std::string_view::npos) break;
    out->append(piece.substr(start, pos - start));
    out->push_back(' ');
    start = pos + kSpaceEscape.size();
  }
  out->append(piece.substr(start));
}

bool all_newlines(std::string_view word) {
  return word.find_first_not_of('\n') == std::string_view::npos;
}

}  // namespace

Tokenizer::Tokenizer(TokenizerVocab vocab) : vocab_(std::move(vocab)) {}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::create(TokenizerVocab vocab) {
  SLUICE_RETURN_IF_ERROR(validate_vocab(vocab));
  std::unique_ptr<Tokenizer> t(new Tokenizer(std::move(vocab)));
  SLUICE_RETURN_IF_ERROR(t->build_tables());
  return t;
}

Status Tokenizer::build_tables() {
  const size_t n = vocab_.pieces.size();
  if (vocab_.scores.empty()) vocab_.scores.assign(n, 0.0f);
  if (vocab_.types.empty()) vocab_.types.assign(n, TokenType::kNormal);
  // NOTE: the index points into vocab_.pieces; the Tokenizer is neither copied nor moved
  // (create() returns it boxed), so those strings never move.
  index_.build(&vocab_.pieces);
  if (vocab_.model == ModelKind::kBpeMerges) {
    SLUICE_RETURN_IF_ERROR(merges_.build(vocab_.merges, index_, vocab_.name));
    // The table holds everything the encoder needs; drop the strings (tens of MB for
    // Gemma 4's half a million merges).
    vocab_.merges.clear();
    vocab_.merges.shrink_to_fit();
  }
  for (int b = 0; b < 256; ++b) {
    int32_t id = index_.find(byte_piece(static_cast<uint8_t>(b)));
    if (id < 0 && vocab_.model == ModelKind::kSpmScores) {
      // llama.cpp's SPM fallback: the one-byte piece itself.
      id = index_.find(std::string(1, static_cast<char>(b)));
    }
    bytes_.ids[b] = id;
  }
  bytes_.unk_id = vocab_.unk_id;
  byte_of_.assign(n, -1);
  for (size_t id = 0; id < n; ++id) {
    if (vocab_.types[id] != TokenType::kByte) continue;
    byte_of_[id] = static_cast<int16_t>(*parse_byte_piece(vocab_.pieces[id]));  // validated
  }
  specials_.build(&vocab_.pieces, vocab_.types);
  return Status::ok();
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  std::vector<Fragment> fragments;
  specials_.partition(text, parse_special, vocab_.special_match, &fragments);
  bool prev_special = true;  // the start of the text counts as following a special token
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
    } else {
      encode_fragment(text.substr(f.offset, f.length), vocab_.add_space_prefix && prev_special,
                      &out);
      prev_special = false;
    }
  }
  return out;
}

void Tokenizer::encode_fragment(std::string_view raw, bool prefix_space,
                                std::vector<int32_t>* out) const {
  std::string text;
  text.reserve(raw.size() + raw.size() / 4 + 3);
  if (prefix_space && vocab_.model == ModelKind::kSpmScores) text.push_back(' ');
  text.append(raw);
  if (vocab_.escape_spaces) {
    std::string escaped;
    escaped.reserve(text.size() + text.size() / 2);
    append_escaped(text, &escaped);
    text.swap(escaped);
  }
  if (vocab_.model == ModelKind::kSpmScores) {
    encode_by_scores(text, index_, vocab_.scores, bytes_, out);
    return;
  }
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t len = rest.size();
    if (vocab_.pre_split == PreSplit::kNewlineRuns) {
      len = rest[0] == '\n' ? rest.find_first_not_of('\n') : rest.find('\n');
      if (len == std::string_view::npos) len = rest.size();
    }
    std::string_view word = rest.substr(0, len);
    rest.remove_prefix(len);
    bool whole = vocab_.whole_words == WholeWord::kAlways ||
                 (vocab_.whole_words == WholeWord::kNewlineRuns && all_newlines(word));
    if (whole) {
      int32_t id = index_.find(word);
      if (id >= 0) {
        out->push_back(id);
        continue;
      }
    }
    encode_by_ranks(word, index_, merges_, bytes_, out);
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) append_token_text(id, render_special, &out);
  return out;
}

void Tokenizer::append_token_text(int32_t id, bool render_special, std::string* out) const {
  if (id < 0 || id >= vocab_size()) return;
  const std::string& piece = vocab_.pieces[id];
  switch (vocab_.types[id]) {
    case TokenType::kNormal:
      if (vocab_.escape_spaces) {
        append_unescaped(piece, out);
      } else {
        out->append(piece);
      }
      return;
    case TokenType::kByte:
      out->push_back(static_cast<char>(byte_of_[id]));
      return;
    case TokenType::kUserDefined:
      out->append(piece);
      return;
    case TokenType::kControl:
    case TokenType::kUnknown:
      if (render_special) out->append(piece);
      return;
    case TokenType::kUnused:
      return;
  }
}

const std::string& Tokenizer::token_piece(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || id >= vocab_size()) return kEmpty;
  return vocab_.pieces[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view piece) const {
  int32_t id = index_.find(piece);
  if (id < 0) return std::nullopt;
  return id;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return TokenType::kNormal;
  return vocab_.types[id];
}

bool Tokenizer::is_control(int32_t id) const {
  TokenType t = token_type(id);
  return t == TokenType::kControl || t == TokenType::kUnknown;
}

bool Tokenizer::is_special(int32_t id) const {
  TokenType t = token_type(id);
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined;
}

}  // namespace sluice::tokenizer
