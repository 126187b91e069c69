#include "sluice_bench/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

namespace sluice::bench {
namespace {

// Short, frequent English words: in SentencePiece/BPE vocabularies each is one token with
// its leading space, so a prompt of N words is close to N tokens before fitting.
constexpr std::array<std::string_view, 128> kWords = {
    "the",    "of",     "and",    "to",     "in",     "is",    "was",     "for",   "on",
    "with",   "as",     "by",     "at",     "from",   "that",  "this",    "which", "or",
    "be",     "are",    "it",     "an",     "not",    "but",   "have",    "had",   "has",
    "were",   "one",    "all",    "their",  "there",  "been",  "would",   "can",   "more",
    "other",  "new",    "some",   "time",   "could",  "them",  "only",    "first", "into",
    "over",   "after",  "year",   "also",   "people", "two",   "most",    "made",  "world",
    "state",  "way",    "many",   "may",    "such",   "work",  "then",    "life",  "city",
    "day",    "school", "water",  "part",   "war",    "house", "point",   "music", "group",
    "family", "during", "under",  "around", "small",  "large", "high",    "long",  "place",
    "should", "three",  "early",  "later",  "before", "since", "while",   "where", "each",
    "name",   "system", "number", "book",   "game",   "team",  "left",    "right", "end",
    "home",   "back",   "well",   "still",  "found",  "known", "between", "line",  "river",
    "story",  "power",  "north",  "south",  "east",   "west",  "light",   "field", "study",
    "market", "road",   "money",  "class",  "child",  "night", "table",   "paper", "green",
    "black",  "white"};

uint64_t mix(uint64_t seed, uint64_t salt) {
  // splitmix64 finaliser: independent streams from one --seed.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int64_t draw_len(std::mt19937_64& rng, LengthRange r) {
  return std::uniform_int_distribution<int64_t>(r.lo, r.hi)(rng);
}

}  // namespace

LengthRange length_range(int64_t len, double range_ratio) {
  LengthRange r;
  r.lo = std::max<int64_t>(
      1, static_cast<int64_t>(std::floor(static_cast<double>(len) * (1.0 - range_ratio))));
  r.hi = std::max<int64_t>(
      r.lo, static_cast<int64_t>(std::floor(static_cast<double>(len) * (1.0 + range_ratio))));
  return r;
}

std::vector<BenchPrompt> make_token_prompts(const SyntheticOptions& opt) {
  std::mt19937_64 rng(mix(opt.seed, 1));
  std::uniform_int_distribution<int32_t> id(opt.token_id_lo, opt.token_id_hi - 1);
  std::vector<int32_t> prefix(static_cast<size_t>(opt.prefix_len));
  for (int32_t& t : prefix) t = id(rng);
  const LengthRange in = length_range(opt.input_len, opt.range_ratio);
  const LengthRange out = length_range(opt.output_len, opt.range_ratio);
  std::vector<BenchPrompt> prompts(static_cast<size_t>(opt.num_prompts));
  for (BenchPrompt& p : prompts) {
    const int64_t n = draw_len(rng, in);
    p.output_len = draw_len(rng, out);
    p.prompt_ids = prefix;
    for (int64_t i = 0; i < n; ++i) p.prompt_ids.push_back(id(rng));
    p.prompt_len = static_cast<int64_t>(p.prompt_ids.size());
    p.prompt_len_exact = true;
  }
  return prompts;
}

std::vector<std::string> random_words(std::mt19937_64& rng, int64_t n) {
  std::uniform_int_distribution<size_t> pick(0, kWords.size() - 1);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) out.emplace_back(kWords[pick(rng)]);
  return out;
}

std::string join_words(const std::vector<std::string>& words, int64_t k) {
  std::string s;
  const size_t n = std::min(words.size(), static_cast<size_t>(std::max<int64_t>(k, 0)));
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += words[i];
  }
  return s;
}

std::vector<std::string> prefix_words(uint64_t seed, int64_t n) {
  std::mt19937_64 rng(mix(seed, 2));
  return random_words(rng, n);
}

std::vector<BenchPrompt> make_word_prompts(const SyntheticOptions& opt, int64_t num_prefix_words) {
  std::mt19937_64 rng(mix(opt.seed, 3));
  const std::string prefix = join_words(prefix_words(opt.seed, num_prefix_words), num_prefix_words);
  const LengthRange in = length_range(opt.input_len, opt.range_ratio);
  const LengthRange out = length_range(opt.output_len, opt.range_ratio);
  std::vector<BenchPrompt> prompts(static_cast<size_t>(opt.num_prompts));
  for (BenchPrompt& p : prompts) {
    const int64_t n = draw_len(rng, in);
    p.output_len = draw_len(rng, out);
    p.prefix_text = prefix;
    // NOTE: twice the target plus slack: fitting only ever needs fewer words than tokens
    // unless a word splits into several tokens, and template tokens count toward the target.
    p.words = random_words(rng, 2 * n + 16);
    p.target_len = opt.prefix_len + n;
    p.prompt_text = join_words(p.words, n);
    p.prompt_len = num_prefix_words + n;
    p.prompt_len_exact = false;
  }
  return prompts;
}

int64_t fit_word_count(int64_t target, int64_t max_words, int64_t guess,
                       const std::function<int64_t(int64_t)>& tokens_of) {
  max_words = std::max<int64_t>(1, max_words);
  std::map<int64_t, int64_t> seen;
  auto count = [&](int64_t k) {
    auto it = seen.find(k);
    if (it == seen.end()) it = seen.emplace(k, tokens_of(k)).first;
    return it->second;
  };
  int64_t k = std::clamp<int64_t>(guess, 1, max_words);
  for (int step = 0; step < 4; ++step) {
    const int64_t miss = target - count(k);
    if (miss == 0) return k;
    const int64_t next = std::clamp<int64_t>(k + miss, 1, max_words);
    if (next == k) break;
    k = next;
  }
  // Smallest k in [1, max_words] with count(k) >= target (max_words when none), then the
  // nearer of it and its predecessor.
  int64_t lo = 1, hi = max_words;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (count(mid) >= target) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (lo > 1 && std::abs(count(lo - 1) - target) <= std::abs(count(lo) - target)) return lo - 1;
  return lo;
}

StatusOr<std::vector<BenchPrompt>> load_jsonl(const std::string& path, int64_t num_prompts,
                                              int64_t default_output_len) {
  std::ifstream in(path);
  if (!in) return Status::not_found(fmt::format("--dataset-path {}: cannot open it", path));
  std::vector<BenchPrompt> records;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto bad = [&](std::string_view why) {
      return Status::invalid_argument(fmt::format("{}:{}: {}", path, line_no, why));
    };
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
    BenchPrompt p;
    const auto prompt = j.find("prompt");
    if (prompt == j.end()) return bad("no \"prompt\"");
    if (prompt->is_string()) {
      p.prompt_text = prompt->get<std::string>();
    } else if (prompt->is_array() && !prompt->empty()) {
      for (const nlohmann::json& t : *prompt) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
            t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
          return bad("\"prompt\" array holds something other than token ids");
        }
        p.prompt_ids.push_back(t.get<int32_t>());
      }
      p.prompt_len = static_cast<int64_t>(p.prompt_ids.size());
      p.prompt_len_exact = true;
    } else {
      return bad("\"prompt\" must be a string or a non-empty array of token ids");
    }
    p.output_len = default_output_len;
    if (const auto o = j.find("output_len"); o != j.end()) {
      if (!o->is_number_integer() || o->get<int64_t>() < 1)
        return bad("\"output_len\" must be an integer >= 1");
      p.output_len = o->get<int64_t>();
    }
    records.push_back(std::move(p));
  }
  if (records.empty())
    return Status::invalid_argument(fmt::format("--dataset-path {}: no records", path));
  std::vector<BenchPrompt> out;
  out.reserve(static_cast<size_t>(num_prompts));
  for (int64_t i = 0; i < num_prompts; ++i)
    out.push_back(records[static_cast<size_t>(i) % records.size()]);
  return out;
}

std::vector<double> poisson_arrivals(int64_t n, double rate, uint64_t seed) {
  std::vector<double> t(static_cast<size_t>(std::max<int64_t>(n, 0)), 0.0);
  if (std::isinf(rate)) return t;
  std::mt19937_64 rng(mix(seed, 4));
  std::exponential_distribution<double> gap(rate);
  for (size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] + gap(rng);
  return t;
}

std::vector<Arrival> tenant_schedule(int64_t num_prompts_per_tenant,
                                     const std::vector<double>& rates, uint64_t seed) {
  std::vector<Arrival> all;
  for (size_t i = 0; i < rates.size(); ++i) {
    const std::vector<double> t =
        poisson_arrivals(num_prompts_per_tenant, rates[i], mix(seed, 100 + i));
    for (int64_t j = 0; j < num_prompts_per_tenant; ++j) {
      all.push_back({t[static_cast<size_t>(j)],
                     static_cast<int64_t>(i) * num_prompts_per_tenant + j, static_cast<int>(i)});
    }
  }
  // Simultaneous arrivals (rate inf) interleave round-robin over tenants, so a
  // --max-concurrency limit does not hand every slot to tenant 0 first.
  const auto rank = [n = num_prompts_per_tenant](const Arrival& a) { return a.prompt_index % n; };
  std::sort(all.begin(), all.end(), [&](const Arrival& a, const Arrival& b) {
    if (a.t_s != b.t_s) return a.t_s < b.t_s;
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return a.tenant < b.tenant;
  });
  return all;
}

}  // namespace sluice::bench
