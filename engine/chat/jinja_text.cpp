#include "engine/chat/jinja_text.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sluice::chat::jinja {
namespace {

uint32_t lower_cp(uint32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
  if (c >= 0x100 && c <= 0x17f) {
    if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17f) return c;
    if (c == 0x178) return 0xff;
    if ((c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c % 2 == 0 ? c + 1 : c;
    return c % 2 == 1 ? c + 1 : c;  // U+0139..U+0148, U+0179..U+017E
  }
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  return c;
}

uint32_t upper_cp(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 32;
  if (c == 0xff) return 0x178;
  if (c == 0xb5) return 0x39c;
  if (c >= 0x100 && c <= 0x17f) {
    if (c == 0x131) return 'I';
    if (c == 0x17f) return 'S';
    if (c == 0x130 || c == 0x138 || c == 0x149) return c;
    if ((c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c % 2 == 1 ? c - 1 : c;
    if (c == 0x178) return c;
    return c % 2 == 0 ? c - 1 : c;
  }
  if (c == 0x3c2) return 0x3a3;
  if (c >= 0x3b1 && c <= 0x3c9) return c - 32;
  if (c >= 0x430 && c <= 0x44f) return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  return c;
}

void append_upper(std::string& out, uint32_t c) {
  if (c == 0xdf) {  // 'ß'.upper() == 'SS'
    out += "SS";
    return;
  }
  utf8_append(out, upper_cp(c));
}

bool is_cased(uint32_t c) { return c == 0xdf || lower_cp(c) != c || upper_cp(c) != c; }

bool is_printable(uint32_t c) {
  if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f)) return false;
  if ((c >= 0x205f && c <= 0x206f) || c == 0x3000 || c == 0xfeff) return false;
  if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return false;
  return true;
}

template <typename Fn>
std::string map_code_points(std::string_view s, Fn fn) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_decode(s, i, &cp);
    if (n == 1 && cp >= 0x80) {
      out += s[i];  // invalid byte: keep it
    } else {
      fn(out, cp);
    }
    i += n;
  }
  return out;
}

}  // namespace

size_t utf8_decode(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c = b(i);
  *cp = c;
  if (c < 0x80) return 1;
  size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
  if (n == 0 || c >= 0xf8 || i + n > s.size()) return 1;
  uint32_t v = c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 1;
    v = (v << 6) | (b(i + k) & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10ffff) return 1;  // overlong or out of range
  *cp = v;
  return n;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> out;
  uint32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_decode(s, i, &cp);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t count = 0;
  uint32_t cp = 0;
  for (size_t i = 0; i < s.size(); i += utf8_decode(s, i, &cp)) ++count;
  return count;
}

bool is_py_space(uint32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x1c:
    case 0x1d:
    case 0x1e:
    case 0x1f:
    case 0x20:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200a;
  }
}

std::string_view py_strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  auto strippable = [&](uint32_t cp, std::string_view ch) {
    if (chars.data() == nullptr) return is_py_space(cp);
    return chars.find(ch) != std::string_view::npos;
  };
  std::vector<std::string_view> cs = utf8_chars(s);
  size_t begin = 0, end = cs.size();
  uint32_t cp = 0;
  while (left && begin < end) {
    utf8_decode(cs[begin], 0, &cp);
    if (!strippable(cp, cs[begin])) break;
    ++begin;
  }
  while (right && end > begin) {
    utf8_decode(cs[end - 1], 0, &cp);
    if (!strippable(cp, cs[end - 1])) break;
    --end;
  }
  if (begin == end) return s.substr(0, 0);
  size_t from = static_cast<size_t>(cs[begin].data() - s.data());
  size_t to = static_cast<size_t>(cs[end - 1].data() - s.data()) + cs[end - 1].size();
  return s.substr(from, to - from);
}

std::string_view py_rstrip(std::string_view s) {
  return py_strip_chars(s, std::string_view(), false, true);
}
std::string_view py_lstrip(std::string_view s) {
  return py_strip_chars(s, std::string_view(), true, false);
}

std::string py_upper(std::string_view s) {
  return map_code_points(s, [](std::string& o, uint32_t c) { append_upper(o, c); });
}

std::string py_lower(std::string_view s) {
  return map_code_points(s, [](std::string& o, uint32_t c) {
    if (c == 0x130) {  // 'İ'.lower() == 'i' + U+0307
      o += "i\xcc\x87";
      return;
    }
    utf8_append(o, lower_cp(c));
  });
}

std::string py_title(std::string_view s) {
  bool prev_cased = false;
  return map_code_points(s, [&](std::string& o, uint32_t c) {
    if (prev_cased) {
      utf8_append(o, lower_cp(c));
    } else if (c == 0xdf) {
      o += "Ss";
    } else {
      utf8_append(o, upper_cp(c));
    }
    prev_cased = is_cased(c);
  });
}

std::string py_capitalize(std::string_view s) {
  bool first = true;
  return map_code_points(s, [&](std::string& o, uint32_t c) {
    if (first && c == 0xdf) {
      o += "Ss";
    } else {
      utf8_append(o, first ? upper_cp(c) : lower_cp(c));
    }
    first = false;
  });
}

bool py_islower(std::string_view s) {
  bool any = false;
  uint32_t cp = 0;
  for (size_t i = 0; i < s.size(); i += utf8_decode(s, i, &cp)) {
    utf8_decode(s, i, &cp);
    if (!is_cased(cp)) continue;
    if (upper_cp(cp) == cp && cp != 0xdf) return false;
    any = true;
  }
  return any;
}

bool py_isupper(std::string_view s) {
  bool any = false;
  uint32_t cp = 0;
  for (size_t i = 0; i < s.size(); i += utf8_decode(s, i, &cp)) {
    utf8_decode(s, i, &cp);
    if (!is_cased(cp)) continue;
    if (lower_cp(cp) == cp) return false;
    any = true;
  }
  return any;
}

std::string format_py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // "-d.ddde+XX"
  std::string out;
  if (sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits += c;
  }
  int exp = std::atoi(std::string(sci.substr(e + 1)).c_str());
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += ebuf;
  } else if (exp >= 0) {
    size_t int_digits = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_digits) {
      out += digits;
      out.append(int_digits - digits.size(), '0');
      out += ".0";
    } else {
      out.append(digits, 0, int_digits);
      out += '.';
      out.append(digits, int_digits, std::string::npos);
    }
  } else {
    out += "0.";
    out.append(static_cast<size_t>(-exp - 1), '0');
    out += digits;
  }
  return out;
}

void append_py_repr(std::string& out, std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  out += quote;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_decode(s, i, &cp);
    char buf[16];
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (n == 1 && cp >= 0x80) {  // invalid byte (Python would have a surrogate escape)
      std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      out += buf;
    } else if (!is_printable(cp)) {
      std::snprintf(buf, sizeof(buf),
                    cp < 0x100     ? "\\x%02x"
                    : cp < 0x10000 ? "\\u%04x"
                                   : "\\U%08x",
                    cp);
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += quote;
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_decode(s, i, &cp);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (cp < 0x20) {
          std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
          out += buf;
        } else if (ensure_ascii && cp >= 0x80) {
          if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xd800 + (v >> 10),
                          0xdc00 + (v & 0x3ff));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
          }
          out += buf;
        } else {
          out.append(s.substr(i, n));
        }
    }
    i += n;
  }
  out += '"';
}

}  // namespace sluice::chat::jinja
