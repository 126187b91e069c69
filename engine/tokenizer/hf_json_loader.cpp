// from_hf_json: fills a TokenizerVocab from a Hugging Face `tokenizer.json` (plus, when
// given, `tokenizer_config.json`). Only the pipeline Gemma's tokenizers use is accepted:
//   normalizer     null, or Replace(" " -> "\u2581")
//   pre_tokenizer  null, Split(" ", merged_with_previous) after that normalizer (a no-op),
//                  or Split(Regex "[^\n]+|[\n]+", isolated), alone or in a Sequence
//   model          BPE over characters, byte_fallback, no dropout/prefix/suffix
//   decoder        null, or a Sequence of Replace("\u2581" -> " "), ByteFallback, Fuse
//   added_tokens   special -> CONTROL, others -> USER_DEFINED; no lstrip/rstrip/single_word
//                  (every other piece is NORMAL or, with byte_fallback, BYTE; an unk_token
//                  that is not an added token is an ordinary piece, as in `tokenizers`)
// Anything else is UNIMPLEMENTED with the setting named, never silently approximated.

#include <fmt/format.h>

#include <map>

#include "common/mapped_file.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/weights/json_strict.h"

namespace sluice::tokenizer {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxJsonBytes = uint64_t{512} << 20;  // real Gemma files are ~30 MB
constexpr int kMaxJsonDepth = 64;

StatusOr<json> load_json(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  if (file->size() > kMaxJsonBytes) {
    return Status::invalid_argument(
        fmt::format("{}: file is {} bytes, limit {}", path, file->size(), kMaxJsonBytes));
  }
  std::string_view text(reinterpret_cast<const char*>(file->data()), file->size());
  return weights::parse_json_strict(text, path, kMaxJsonDepth);
}

// `j` as one line of at most 120 characters, for an error message.
std::string shown(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 120) s = s.substr(0, 120) + "...";
  return s;
}

Status unsupported(const std::string& name, std::string_view what, const json& j) {
  return Status::unimplemented(fmt::format("{}: unsupported {}: {}", name, what, shown(j)));
}

// `j[key]` if it is a string, else nullptr.
const std::string* string_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

bool bool_field(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

// `{"String": s}` patterns only; Regex patterns return nullptr.
const std::string* string_pattern(const json& j) {
  auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) return nullptr;
  return string_field(*it, "String");
}

const std::string* regex_pattern(const json& j) {
  auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) return nullptr;
  return string_field(*it, "Regex");
}

Status parse_normalizer(const json& j, const std::string& name, TokenizerVocab* v) {
  v->escape_spaces = false;
  if (j.is_null()) return Status::ok();
  const json* norm = &j;
  if (j.is_object() && j.value("type", "") == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array() || it->size() != 1) {
      return unsupported(name, "normalizer", j);
    }
    norm = &(*it)[0];
  }
  const std::string* pattern = norm->is_object() ? string_pattern(*norm) : nullptr;
  const std::string* content = norm->is_object() ? string_field(*norm, "content") : nullptr;
  if (norm->is_object() && norm->value("type", "") == "Replace" && pattern && *pattern == " " &&
      content && *content == kSpaceEscape) {
    v->escape_spaces = true;
    return Status::ok();
  }
  return unsupported(name, "normalizer", j);
}

Status parse_one_pre_tokenizer(const json& j, const std::string& name, TokenizerVocab* v) {
  if (!j.is_object() || j.value("type", "") != "Split" || bool_field(j, "invert", false)) {
    return unsupported(name, "pre_tokenizer", j);
  }
  const std::string behavior = j.value("behavior", "");
  if (const std::string* s = string_pattern(j)) {
    // Gemma's Split(" ") runs after the normalizer has replaced every space: a no-op.
    if (*s == " " && v->escape_spaces) return Status::ok();
    return unsupported(name, "pre_tokenizer", j);
  }
  const std::string* re = regex_pattern(j);
  if (re &&
      (*re == "[^\n]+|[\n]+" || *re == "[\n]+|[^\n]+" || *re == "\n+|[^\n]+" ||
       *re == "[^\n]+|\n+") &&
      behavior == "Isolated") {
    v->pre_split = PreSplit::kNewlineRuns;
    return Status::ok();
  }
  return unsupported(name, "pre_tokenizer", j);
}

Status parse_pre_tokenizer(const json& j, const std::string& name, TokenizerVocab* v) {
  v->pre_split = PreSplit::kNone;
  if (j.is_null()) return Status::ok();
  if (j.is_object() && j.value("type", "") == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) return unsupported(name, "pre_tokenizer", j);
    for (const json& p : *it) SLUICE_RETURN_IF_ERROR(parse_one_pre_tokenizer(p, name, v));
    return Status::ok();
  }
  return parse_one_pre_tokenizer(j, name, v);
}

Status check_decoder(const json& j, const std::string& name) {
  if (j.is_null()) return Status::ok();
  if (!j.is_object() || j.value("type", "") != "Sequence") return unsupported(name, "decoder", j);
  auto it = j.find("decoders");
  if (it == j.end() || !it->is_array()) return unsupported(name, "decoder", j);
  for (const json& d : *it) {
    std::string type = d.is_object() ? d.value("type", "") : "";
    if (type == "ByteFallback" || type == "Fuse") continue;
    const std::string* pattern = d.is_object() ? string_pattern(d) : nullptr;
    const std::string* content = d.is_object() ? string_field(d, "content") : nullptr;
    if (type == "Replace" && pattern && *pattern == kSpaceEscape && content && *content == " ") {
      continue;
    }
    return unsupported(name, "decoder step", d);
  }
  return Status::ok();
}

// The model: vocab and merges into `pieces_by_id` / v->merges.
Status parse_model(const json& m, const std::string& name, std::map<int64_t, std::string>* by_id,
                   std::string* unk_token, bool* byte_fallback, TokenizerVocab* v) {
  if (!m.is_object() || m.value("type", "") != "BPE") return unsupported(name, "model", m);
  auto dropout = m.find("dropout");
  if (dropout != m.end() && !dropout->is_null()) return unsupported(name, "BPE dropout", *dropout);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = m.find(key);
    if (it != m.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
      return unsupported(name, key, *it);
    }
  }
  *byte_fallback = bool_field(m, "byte_fallback", false);
  v->whole_words = bool_field(m, "ignore_merges", false) ? WholeWord::kAlways : WholeWord::kNever;
  if (const std::string* unk = string_field(m, "unk_token")) *unk_token = *unk;

  auto vocab = m.find("vocab");
  if (vocab == m.end() || !vocab->is_object()) {
    return Status::invalid_argument(
        fmt::format("{}: model.vocab is missing or not an object", name));
  }
  if (vocab->size() > kMaxVocabSize) {
    return Status::invalid_argument(fmt::format("{}: model.vocab has {} entries, limit {}", name,
                                                vocab->size(), kMaxVocabSize));
  }
  for (const auto& [piece, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(kMaxVocabSize)) {
      return Status::invalid_argument(
          fmt::format("{}: model.vocab['{}'] is {}, not an id in [0, {})", name,
                      printable_piece(piece), shown(id), kMaxVocabSize));
    }
    auto [it, fresh] = by_id->emplace(id.get<int64_t>(), piece);
    if (!fresh) {
      return Status::invalid_argument(fmt::format("{}: id {} is given to both '{}' and '{}'", name,
                                                  it->first, printable_piece(it->second),
                                                  printable_piece(piece)));
    }
  }

  auto merges = m.find("merges");
  if (merges == m.end() || merges->is_null()) return Status::ok();
  if (!merges->is_array() || merges->size() > kMaxMerges) {
    return Status::invalid_argument(
        fmt::format("{}: model.merges is not an array of at most {} merges", name, kMaxMerges));
  }
  v->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& e = (*merges)[i];
    if (e.is_string()) {  // "left right" (older files)
      const std::string& s = e.get_ref<const std::string&>();
      size_t sep = s.find(' ');
      if (sep == std::string::npos || s.find(' ', sep + 1) != std::string::npos) {
        return Status::invalid_argument(
            fmt::format("{}: model.merges[{}] ('{}') is not two parts split by one space", name, i,
                        printable_piece(s)));
      }
      v->merges.emplace_back(s.substr(0, sep), s.substr(sep + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      v->merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return Status::invalid_argument(
          fmt::format("{}: model.merges[{}] is neither \"a b\" nor [\"a\", \"b\"]", name, i));
    }
  }
  return Status::ok();
}

// The text of a tokenizer_config.json special-token entry: a string or {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    if (const std::string* s = string_field(*it, "content")) return *s;
  }
  return std::nullopt;
}

// Whether the post-processor's single-sequence template starts with `bos`.
bool template_adds(const json& post, const std::string& bos) {
  if (!post.is_object() || post.value("type", "") != "TemplateProcessing") return false;
  auto single = post.find("single");
  if (single == post.end() || !single->is_array() || single->empty()) return false;
  const json& first = (*single)[0];
  auto special = first.find("SpecialToken");
  if (special == first.end() || !special->is_object()) return false;
  const std::string* id = string_field(*special, "id");
  return id != nullptr && *id == bos;
}

// Added tokens: their texts into `by_id` (checked against the model's vocab), special ones
// CONTROL and the others USER_DEFINED in `types`.
Status parse_added_tokens(const json& root, const std::string& name,
                          std::map<int64_t, std::string>* by_id,
                          std::map<int64_t, TokenType>* types) {
  auto added = root.find("added_tokens");
  if (added == root.end() || added->is_null()) return Status::ok();
  if (!added->is_array()) return unsupported(name, "added_tokens", *added);
  for (const json& a : *added) {
    const std::string* content = a.is_object() ? string_field(a, "content") : nullptr;
    auto id_it = a.is_object() ? a.find("id") : a.end();
    if (content == nullptr || id_it == a.end() || !id_it->is_number_integer() ||
        id_it->get<int64_t>() < 0 || id_it->get<int64_t>() >= static_cast<int64_t>(kMaxVocabSize)) {
      return Status::invalid_argument(
          fmt::format("{}: added token {} lacks a string content or a valid id", name, shown(a)));
    }
    for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
      if (bool_field(a, flag, false)) return unsupported(name, "added-token flag", a);
    }
    if (bool_field(a, "normalized", false) && (content->find(' ') != std::string::npos ||
                                               content->find(kSpaceEscape) != std::string::npos)) {
      return unsupported(name, "normalized added token with a space", a);
    }
    int64_t id = id_it->get<int64_t>();
    auto [it, fresh] = by_id->emplace(id, *content);
    if (!fresh && it->second != *content) {
      return Status::invalid_argument(
          fmt::format("{}: added token {} is '{}' but the vocab has '{}'", name, id,
                      printable_piece(*content), printable_piece(it->second)));
    }
    (*types)[id] = bool_field(a, "special", false) ? TokenType::kControl : TokenType::kUserDefined;
  }
  return Status::ok();
}

// bos/eos/pad/unk ids and add_bos: tokenizer_config.json when given, else the usual texts
// and the post-processor's template.
Status read_special_ids(const json& root, const std::string& config_path,
                        const std::string& unk_token, TokenizerVocab* v) {
  auto id_of = [v](const std::string& text) -> int32_t {
    for (size_t i = 0; i < v->pieces.size(); ++i) {
      if (v->pieces[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  };
  std::string bos = "<bos>", eos = "<eos>", pad = "<pad>";
  std::string unk = unk_token.empty() ? std::string("<unk>") : unk_token;
  std::optional<bool> add_bos;
  if (!config_path.empty()) {
    SLUICE_ASSIGN_OR_RETURN(json cfg, load_json(config_path));
    if (!cfg.is_object()) {
      return Status::invalid_argument(fmt::format("{}: not a JSON object", config_path));
    }
    bos = config_token(cfg, "bos_token").value_or(bos);
    eos = config_token(cfg, "eos_token").value_or(eos);
    pad = config_token(cfg, "pad_token").value_or(pad);
    unk = config_token(cfg, "unk_token").value_or(unk);
    if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean()) {
      add_bos = it->get<bool>();
    }
  }
  v->bos_id = id_of(bos);
  v->eos_id = id_of(eos);
  v->pad_id = id_of(pad);
  v->unk_id = id_of(unk);
  v->add_bos =
      add_bos.value_or(template_adds(root.value("post_processor", json()), bos)) && v->bos_id >= 0;
  return Status::ok();
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> from_hf_json(const std::string& tokenizer_json_path,
                                                  const std::string& tokenizer_config_path) {
  const std::string& name = tokenizer_json_path;
  SLUICE_ASSIGN_OR_RETURN(json root, load_json(tokenizer_json_path));
  if (!root.is_object()) {
    return Status::invalid_argument(fmt::format("{}: not a JSON object", name));
  }
  TokenizerVocab v;
  v.name = name;
  v.model = ModelKind::kBpeMerges;
  v.special_match = SpecialMatch::kLeftmostLongest;
  SLUICE_RETURN_IF_ERROR(parse_normalizer(root.value("normalizer", json()), name, &v));
  SLUICE_RETURN_IF_ERROR(parse_pre_tokenizer(root.value("pre_tokenizer", json()), name, &v));
  SLUICE_RETURN_IF_ERROR(check_decoder(root.value("decoder", json()), name));

  std::map<int64_t, std::string> by_id;
  std::string unk_token;
  bool byte_fallback = false;
  auto model = root.find("model");
  if (model == root.end()) return Status::invalid_argument(fmt::format("{}: no \"model\"", name));
  SLUICE_RETURN_IF_ERROR(parse_model(*model, name, &by_id, &unk_token, &byte_fallback, &v));
  std::map<int64_t, TokenType> added_types;
  SLUICE_RETURN_IF_ERROR(parse_added_tokens(root, name, &by_id, &added_types));

  // Ids must be exactly 0..N-1.
  const size_t n = by_id.size();
  if (n == 0 || by_id.rbegin()->first != static_cast<int64_t>(n) - 1) {
    return Status::invalid_argument(
        fmt::format("{}: token ids are not contiguous from 0 ({} tokens, highest id {})", name, n,
                    n == 0 ? -1 : by_id.rbegin()->first));
  }
  v.pieces.reserve(n);
  v.types.reserve(n);
  for (auto& [id, piece] : by_id) {
    v.pieces.push_back(std::move(piece));
    TokenType t = TokenType::kNormal;
    if (auto a = added_types.find(id); a != added_types.end()) {
      t = a->second;
    } else if (byte_fallback && parse_byte_piece(v.pieces.back())) {
      t = TokenType::kByte;
    }
    v.types.push_back(t);
  }
  SLUICE_RETURN_IF_ERROR(read_special_ids(root, tokenizer_config_path, unk_token, &v));
  return Tokenizer::create(std::move(v));
}

}  // namespace sluice::tokenizer
