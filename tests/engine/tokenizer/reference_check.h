#pragma once
// Shared by the tokenizer reference tests (header-only: the test glob compiles *_test.cpp
// files only). Reads a reference JSONL fixture written by tools/make_tokenizer_reference.py
// or tools/make_synthetic_tokenizer.py and checks a Tokenizer against every line, keeping a
// readable description of the first mismatches.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "test_util.h"

namespace sluice::tokenizer::testing {

struct ReferenceFile {
  nlohmann::json meta;
  std::vector<nlohmann::json> lines;  // every line after the meta line
};

// Empty `lines` (and a gtest failure) when the file is missing or malformed.
inline ReferenceFile load_reference(const std::string& path) {
  ReferenceFile ref;
  std::string text = sluice::testing::read_file(path);
  if (text.empty()) {
    ADD_FAILURE() << "missing reference fixture " << path;
    return ref;
  }
  std::istringstream in(text);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      ADD_FAILURE() << path << ": malformed line: " << line.substr(0, 80);
      ref.lines.clear();
      return ref;
    }
    if (first && j.contains("meta")) {
      ref.meta = j["meta"];
    } else {
      ref.lines.push_back(std::move(j));
    }
    first = false;
  }
  return ref;
}

inline std::string hex_decode(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

inline std::string describe_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size() && i < 40; ++i) {
    if (i > 0) s += ',';
    s += std::to_string(ids[i]);
  }
  if (ids.size() > 40) s += ",...";
  return s + "]";
}

// The expected bytes of `field` ("decode" or "decode_special"): the field, its _hex form, or
// the line's own text when neither is present.
inline std::string expected_bytes(const nlohmann::json& line, const std::string& field) {
  if (line.contains(field)) return line[field].get<std::string>();
  if (line.contains(field + "_hex")) return hex_decode(line[field + "_hex"].get<std::string>());
  return line["text"].get<std::string>();
}

struct CheckCounts {
  int strings = 0;          // lines with "text" and "ids"
  int encode_ok = 0;        // ids with special parsing match
  int encode_plain_ok = 0;  // ids without special parsing match
  int decode_ok = 0;        // decode(ids) bytes match (both render modes)
  int decode_cases = 0;     // lines with "decode_ids"
  int decode_cases_ok = 0;
  int bos_cases = 0;  // lines with "ids_bos"
  int bos_ok = 0;
  int long_cases = 0;  // lines with "long": ~100 KB texts, ids summarized by count and hash
  int long_ok = 0;
  std::vector<std::string> failures;  // the first few, described

  void fail(std::string what) {
    if (failures.size() < 12) failures.push_back(std::move(what));
  }
};

// 64-bit FNV-1a over the ids as little-endian int32 bytes (as the reference tool hashes them).
inline std::string fnv1a_ids(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (int32_t id : ids) {
    auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xFF;
      h *= 0x100000001B3ULL;
    }
  }
  return fmt::format("{:016x}", h);
}

// Checks every line of `ref` against `tok`. `check_plain` also checks "ids_plain" (special
// parsing off, defaulting to "ids"); `check_decode` the decode fields and decode cases.
inline CheckCounts check_reference(const Tokenizer& tok, const ReferenceFile& ref, bool check_plain,
                                   bool check_decode) {
  CheckCounts c;
  for (const nlohmann::json& line : ref.lines) {
    if (line.contains("decode_ids")) {
      if (!check_decode) continue;
      ++c.decode_cases;
      auto ids = line["decode_ids"].get<std::vector<int32_t>>();
      std::string want = hex_decode(line["hex"].get<std::string>());
      std::string want_special = hex_decode(line["hex_special"].get<std::string>());
      std::string got = tok.decode(ids, false);
      std::string got_special = tok.decode(ids, true);
      if (got == want && got_special == want_special) {
        ++c.decode_cases_ok;
      } else {
        c.fail(fmt::format("decode {}: got '{}' / '{}', want '{}' / '{}'", describe_ids(ids), got,
                           got_special, want, want_special));
      }
      continue;
    }
    if (line.contains("long")) {
      ++c.long_cases;
      std::string unit = line["long"]["unit"].get<std::string>();
      std::string text;
      for (int k = line["long"]["repeat"].get<int>(); k > 0; --k) text += unit;
      auto got = tok.encode(text, /*add_bos=*/false, /*parse_special=*/true);
      size_t want_n = line["num_ids"].get<size_t>();
      std::string want_hash = line["fnv1a"].get<std::string>();
      bool round_trip = tok.decode(got, /*render_special=*/true) == text;
      if (got.size() == want_n && fnv1a_ids(got) == want_hash && round_trip) {
        ++c.long_ok;
      } else {
        c.fail(fmt::format("long '{}' x {}: {} ids (want {}), hash {} (want {}), round trip {}",
                           unit, line["long"]["repeat"].get<int>(), got.size(), want_n,
                           fnv1a_ids(got), want_hash, round_trip));
      }
      continue;
    }
    const std::string text = line["text"].get<std::string>();
    if (line.contains("ids_bos")) {
      ++c.bos_cases;
      auto want = line["ids_bos"].get<std::vector<int32_t>>();
      auto got = tok.encode(text, /*add_bos=*/true, /*parse_special=*/true);
      if (got == want) {
        ++c.bos_ok;
      } else {
        c.fail(
            fmt::format("bos '{}': got {} want {}", text, describe_ids(got), describe_ids(want)));
      }
      continue;
    }
    ++c.strings;
    auto want = line["ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(text, /*add_bos=*/false, /*parse_special=*/true);
    if (got == want) {
      ++c.encode_ok;
    } else {
      c.fail(fmt::format("encode '{}': got {} want {}", text.substr(0, 60), describe_ids(got),
                         describe_ids(want)));
    }
    if (check_plain) {
      auto want_plain =
          line.contains("ids_plain") ? line["ids_plain"].get<std::vector<int32_t>>() : want;
      auto got_plain = tok.encode(text, /*add_bos=*/false, /*parse_special=*/false);
      if (got_plain == want_plain) {
        ++c.encode_plain_ok;
      } else {
        c.fail(fmt::format("encode plain '{}': got {} want {}", text.substr(0, 60),
                           describe_ids(got_plain), describe_ids(want_plain)));
      }
    }
    if (check_decode) {
      std::string d = tok.decode(want, false);
      std::string ds = tok.decode(want, true);
      if (d == expected_bytes(line, "decode") && ds == expected_bytes(line, "decode_special")) {
        ++c.decode_ok;
      } else {
        c.fail(fmt::format("decode of {} ('{}'): got '{}' / '{}'", describe_ids(want),
                           text.substr(0, 60), d, ds));
      }
    }
  }
  return c;
}

inline std::string report(const CheckCounts& c) {
  std::string s = fmt::format(
      "{} strings: encode {} ok, encode without special parsing {} ok, decode {} ok; "
      "{} decode cases {} ok; {} BOS cases {} ok; {} long texts {} ok",
      c.strings, c.encode_ok, c.encode_plain_ok, c.decode_ok, c.decode_cases, c.decode_cases_ok,
      c.bos_cases, c.bos_ok, c.long_cases, c.long_ok);
  for (const std::string& f : c.failures) s += "\n  " + f;
  return s;
}

}  // namespace sluice::tokenizer::testing
