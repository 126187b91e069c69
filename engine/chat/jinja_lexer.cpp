#include "engine/chat/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "engine/chat/jinja_text.h"
#include "engine/chat/jinja_value.h"  // TemplateError

namespace sluice::chat::jinja {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    const size_t n = src_.size();
    while (pos_ < n) {
      size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit(TokenType::kText, pos_, src_.substr(pos_));
        break;
      }
      char kind = src_[tag + 1];
      size_t inner = tag + 2;
      char sign = (inner < n && (src_[inner] == '-' || src_[inner] == '+')) ? src_[inner] : 0;
      if (sign != 0) ++inner;
      std::string_view text(src_.data() + pos_, tag - pos_);
      emit(TokenType::kText, pos_, std::string(left_control(text, sign, kind != '{')));
      size_t raw_end = kind == '%' ? match_raw_begin(inner) : 0;
      if (raw_end != 0) {
        lex_raw(tag, raw_end);
      } else if (kind == '#') {
        lex_comment(tag, inner);
      } else {
        lex_tag(kind, tag, inner);
      }
    }
    emit(TokenType::kEof, src_.size(), "");
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& message) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    size_t line = static_cast<size_t>(it - line_starts_.begin());
    throw TemplateError(message, static_cast<int>(line), static_cast<int>(at - *(it - 1) + 1));
  }

  void emit(TokenType type, size_t at, std::string text) {
    if (type == TokenType::kText && text.empty()) return;
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    Token t{type, std::move(text)};
    t.line = static_cast<int>(it - line_starts_.begin());
    t.column = static_cast<int>(at - *(it - 1) + 1);
    tokens_.push_back(std::move(t));
  }

  bool at(size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

  size_t find_tag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
    }
    return std::string::npos;
  }

  size_t skip_space(size_t p) const {
    uint32_t cp = 0;
    while (p < src_.size()) {
      size_t len = utf8_decode(src_, p, &cp);
      if (!is_py_space(cp)) break;
      p += len;
    }
    return p;
  }

  // The text before a tag after `-` (strip all whitespace) or lstrip_blocks (spaces before a
  // block or comment tag that starts its line).
  std::string_view left_control(std::string_view text, char sign, bool lstrip_allowed) const {
    if (sign == '-') return py_rstrip(text);
    if (sign == '+' || !lstrip_allowed) return text;
    size_t line_pos = text.rfind('\n') + 1;  // npos + 1 == 0
    if (line_pos == 0 && !line_starting_) return text;
    std::string_view tail = text.substr(line_pos);
    if (tail.empty() || !py_rstrip(tail).empty()) return text;
    return text.substr(0, line_pos);
  }

  // Closes a tag whose end was matched at [.., end): updates the lexer position.
  void close(size_t end) {
    line_starting_ = end > 0 && src_[end - 1] == '\n';
    pos_ = end;
  }

  // `{%[-+]? raw [-]?%}` starting after `{%` and its sign; returns the end, or 0.
  size_t match_raw_begin(size_t p) const {
    p = skip_space(p);
    if (!at(p, "raw")) return 0;
    p = skip_space(p + 3);
    if (at(p, "-%}")) return skip_space(p + 3);
    if (at(p, "%}")) return p + 2;
    return 0;
  }

  void lex_raw(size_t tag, size_t start) {
    line_starting_ = src_[start - 1] == '\n';
    for (size_t q = src_.find("{%", start); q != std::string::npos; q = src_.find("{%", q + 1)) {
      size_t p = q + 2;
      char sign = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
      if (sign != 0) ++p;
      p = skip_space(p);
      if (!at(p, "endraw")) continue;
      p = skip_space(p + 6);
      size_t end = 0;
      if (at(p, "+%}")) {
        end = p + 3;
      } else if (at(p, "-%}")) {
        end = skip_space(p + 3);
      } else if (at(p, "%}")) {
        end = p + 2 + (at(p + 2, "\n") ? 1 : 0);
      } else {
        continue;
      }
      std::string_view data(src_.data() + start, q - start);
      emit(TokenType::kText, start, std::string(left_control(data, sign, true)));
      close(end);
      return;
    }
    error(tag, "missing end of raw directive ({% endraw %})");
  }

  void lex_comment(size_t tag, size_t start) {
    size_t p = src_.find("#}", start);
    if (p == std::string::npos) error(tag, "missing end of comment tag (#})");
    char sign = (p > start && (src_[p - 1] == '-' || src_[p - 1] == '+')) ? src_[p - 1] : 0;
    size_t end = p + 2;
    if (sign == '-') {
      end = skip_space(end);
    } else if (sign == 0 && at(end, "\n")) {
      ++end;
    }
    close(end);
  }

  void lex_tag(char kind, size_t tag, size_t p) {
    emit(kind == '%' ? TokenType::kBlockBegin : TokenType::kVarBegin, tag, "");
    std::string balance;  // expected closing brackets
    while (true) {
      if (p >= src_.size()) {
        error(tag, kind == '%' ? "unexpected end of template: '{%' is never closed by '%}'"
                               : "unexpected end of template: '{{' is never closed by '}}'");
      }
      if (balance.empty()) {
        size_t end = 0;
        if (kind == '%') {
          if (at(p, "+%}"))
            end = p + 3;
          else if (at(p, "-%}"))
            end = skip_space(p + 3);
          else if (at(p, "%}"))
            end = p + 2 + (at(p + 2, "\n") ? 1 : 0);
        } else {
          if (at(p, "-}}"))
            end = skip_space(p + 3);
          else if (at(p, "}}"))
            end = p + 2;
        }
        if (end != 0) {
          emit(kind == '%' ? TokenType::kBlockEnd : TokenType::kVarEnd, p, "");
          close(end);
          return;
        }
      }
      char c = src_[p];
      if (size_t q = skip_space(p); q != p) {
        p = q;
      } else if (is_digit(c)) {
        p = lex_number(p);
      } else if (is_alpha(c)) {
        size_t q = p;
        while (q < src_.size() && (is_alpha(src_[q]) || is_digit(src_[q]))) ++q;
        emit(TokenType::kName, p, src_.substr(p, q - p));
        p = q;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        p = lex_operator(p, balance);
      }
    }
  }

  // `(\d+_)*\d+` from p; returns p when there is no digit.
  size_t digits(size_t p) const {
    size_t q = p;
    while (q < src_.size() && is_digit(src_[q])) ++q;
    while (q > p && q + 1 < src_.size() && src_[q] == '_' && is_digit(src_[q + 1])) {
      q += 1;
      while (q < src_.size() && is_digit(src_[q])) ++q;
    }
    return q;
  }

  size_t lex_number(size_t p) {
    auto clean = [&](size_t a, size_t b) {
      std::string s;
      for (size_t i = a; i < b; ++i) {
        if (src_[i] != '_') s += src_[i];
      }
      return s;
    };
    size_t int_end = digits(p);
    size_t float_end = 0;
    if (p == 0 || src_[p - 1] != '.') {  // Jinja: a float never starts right after a dot
      size_t q = int_end;
      if (at(q, ".") && q + 1 < src_.size() && is_digit(src_[q + 1])) q = digits(q + 1);
      if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t s = q + 1;
        if (s < src_.size() && (src_[s] == '+' || src_[s] == '-')) ++s;
        if (size_t e = digits(s); e > s) float_end = e;
      }
      if (float_end == 0 && at(int_end, ".") && int_end + 1 < src_.size() &&
          is_digit(src_[int_end + 1])) {
        float_end = digits(int_end + 1);
      }
    }
    if (float_end != 0) {
      std::string s = clean(p, float_end);
      double v = 0;
      auto res = std::from_chars(s.data(), s.data() + s.size(), v);
      if (res.ec == std::errc::result_out_of_range) {  // Python: overflow is inf, underflow 0.0
        size_t e = s.find_first_of("eE");
        v = (e != std::string::npos && s[e + 1] == '-') ? 0.0 : HUGE_VAL;
      }
      emit(TokenType::kFloat, p, s);
      tokens_.back().float_value = v;
      return float_end;
    }
    int base = 10;
    size_t q = p;
    if (src_[p] == '0' && p + 1 < src_.size() &&
        std::string_view("xXoObB").find(src_[p + 1]) != std::string_view::npos) {
      char b = static_cast<char>(src_[p + 1] | 0x20);
      base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
      q = p + 2;
      auto ok = [&](char c) {
        return base == 16 ? is_hex(c) : base == 8 ? (c >= '0' && c <= '7') : (c == '0' || c == '1');
      };
      while (q < src_.size() &&
             (ok(src_[q]) || (src_[q] == '_' && q + 1 < src_.size() && ok(src_[q + 1])))) {
        ++q;
      }
      if (q == p + 2) error(p, "invalid integer literal");
    } else if (src_[p] == '0') {
      q = p + 1;  // 0(_?0)*
      while (true) {
        if (at(q, "0")) {
          q += 1;
        } else if (at(q, "_0")) {
          q += 2;
        } else {
          break;
        }
      }
    } else {
      q = int_end;
    }
    std::string s = clean(base == 10 ? p : p + 2, q);
    int64_t v = 0;
    auto res = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (res.ec != std::errc()) error(p, fmt::format("integer literal {} is out of range", s));
    emit(TokenType::kInt, p, src_.substr(p, q - p));
    tokens_.back().int_value = v;
    return q;
  }

  size_t lex_string(size_t p) {
    char quote = src_[p];
    size_t q = p + 1;
    while (q < src_.size() && src_[q] != quote) q += src_[q] == '\\' ? 2 : 1;
    if (q >= src_.size())
      error(p, fmt::format("unterminated string literal starting with {}", quote));
    std::string out;
    for (size_t i = p + 1; i < q; ++i) {
      char c = src_[i];
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = src_[++i];
      auto hex = [&](int count) {
        uint32_t v = 0;
        for (int k = 0; k < count; ++k) {
          if (i + 1 >= q || !is_hex(src_[i + 1])) error(i, "truncated \\x, \\u or \\U escape");
          char h = src_[++i];
          v = v * 16 + static_cast<uint32_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
          error(i, fmt::format("escape \\U{:08x} is not a valid code point", v));
        }
        utf8_append(out, v);
      };
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          out += e;
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        case 'N':
          error(i, "\\N{...} escapes are not supported in chat templates");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i + 1 < q && src_[i + 1] >= '0' && src_[i + 1] <= '7'; ++k) {
              v = v * 8 + static_cast<uint32_t>(src_[++i] - '0');
            }
            utf8_append(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    emit(TokenType::kString, p, std::move(out));
    return q + 1;
  }

  size_t lex_operator(size_t p, std::string& balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (at(p, op)) {
        emit(TokenType::kOp, p, std::string(op));
        return p + 2;
      }
    }
    char c = src_[p];
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      uint32_t cp = 0;
      size_t len = utf8_decode(src_, p, &cp);
      error(p, fmt::format("unexpected character '{}' in tag", src_.substr(p, len)));
    }
    if (c == '(' || c == '[' || c == '{') {
      balance += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) error(p, fmt::format("unexpected '{}'", c));
      if (balance.back() != c)
        error(p, fmt::format("unexpected '{}', expected '{}'", c, balance.back()));
      balance.pop_back();
    }
    emit(TokenType::kOp, p, std::string(1, c));
    return p + 1;
  }

  std::string src_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace sluice::chat::jinja
