#pragma once
// Text helpers for the chat-template interpreter: Python's string semantics on UTF-8 bytes.
// Python strings are sequences of code points, so indexing, slicing, len() and iteration
// here work on code points. Bytes that are not valid UTF-8 count as one "character" each and
// are kept as they are, so nothing here fails on bad input.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::chat::jinja {

// Decodes the code point at s[i]; returns its length in bytes (1 for an invalid byte, whose
// value is then returned as is in *cp).
size_t utf8_decode(std::string_view s, size_t i, uint32_t* cp);
void utf8_append(std::string& out, uint32_t cp);
// Each code point of `s` as a view into `s`.
std::vector<std::string_view> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);

// Python's str.isspace() for one code point (also what `\s` matches in Python's re).
bool is_py_space(uint32_t cp);
// Python's str.rstrip() / lstrip() with no argument.
std::string_view py_rstrip(std::string_view s);
std::string_view py_lstrip(std::string_view s);
// str.strip(chars) family: `chars` is a set of code points; `left`/`right` pick the ends.
std::string_view py_strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

// str.upper(), str.lower(), str.title(), str.capitalize(), str.islower(), str.isupper().
// NOTE: case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (plus
// 'ß' -> 'SS'); other scripts pass through unchanged, where Python would map a few more.
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

// Python's repr() of a float: shortest round-trip digits, '1.0', '1e+16', '1e-05', 'nan'.
std::string format_py_float(double v);
// Python's repr() of a str: single quotes unless the text holds ' and no ", with escapes.
void append_py_repr(std::string& out, std::string_view s);
// json.dumps of a str: "..." with \" \\ \n \r \t \b \f and \u00XX escapes; with ensure_ascii
// every non-ASCII code point becomes \uXXXX (surrogate pairs above U+FFFF).
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace sluice::chat::jinja
