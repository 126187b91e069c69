// sluice-bench: a load generator for OpenAI-compatible servers (sluice, vLLM, ...).
// INTERFACES.md, "sluice-bench", fixes the flags and the result keys; README.md in this
// folder says how to run it and what each figure means.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <numeric>

#include "sluice_bench/bench_options.h"
#include "sluice_bench/dataset.h"
#include "sluice_bench/http_client.h"
#include "sluice_bench/report.h"
#include "sluice_bench/runner.h"
#include "sluice_bench/server_probe.h"

namespace sluice::bench {
namespace {

struct Flags {
  std::string base_url;
  std::string endpoint = "completions";
  std::string model;
  std::string dataset = "random";
  int64_t input_len = 1024;
  int64_t output_len = 128;
  double range_ratio = 0;
  int64_t prefix_len = 0;
  std::string dataset_path;
  int64_t num_prompts = 1000;
  std::string request_rate = "inf";
  std::string max_concurrency;
  uint64_t seed = 0;
  std::vector<std::string> goodput;
  std::vector<std::string> tenants;
  std::string api_key;
  std::string save_result;
  int32_t vocab_size = 0;
  std::vector<int32_t> eos_token_ids;
  double request_timeout_s = 600;
};

void add_flags(CLI::App& app, Flags& f) {
  app.add_option("--base-url", f.base_url, "Server root, without /v1 (http://HOST:PORT)")
      ->required();
  app.add_option("--endpoint", f.endpoint, "chat or completions")
      ->check(CLI::IsMember({"chat", "completions"}))
      ->capture_default_str();
  app.add_option("--model", f.model, "Model id to request (default: the first of /v1/models)");
  app.add_option("--dataset", f.dataset, "random, prefix or jsonl")
      ->check(CLI::IsMember({"random", "prefix", "jsonl"}))
      ->capture_default_str();
  app.add_option("--input-len", f.input_len, "Prompt tokens (random part, after any prefix)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--output-len", f.output_len, "Generated tokens (max_tokens with ignore_eos)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--range-ratio", f.range_ratio, "Lengths drawn from [len*(1-r), len*(1+r)]")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  app.add_option("--prefix-len", f.prefix_len, "Shared prefix tokens (--dataset prefix)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option(
      "--dataset-path", f.dataset_path,
      "JSONL file for --dataset jsonl: {\"prompt\": str|[ids], \"output_len\": N} per line");
  app.add_option("--num-prompts", f.num_prompts, "Requests per run (per tenant with --tenant)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--request-rate", f.request_rate,
                 "Poisson arrival rate in req/s, or inf (all at once); a comma list sweeps")
      ->capture_default_str();
  app.add_option(
      "--max-concurrency", f.max_concurrency,
      "Most requests in flight (closed loop with --request-rate inf); a comma list sweeps");
  app.add_option("--seed", f.seed, "Seed of prompts and arrivals")->capture_default_str();
  app.add_option("--goodput", f.goodput, "SLOs for request_goodput: ttft:MS tpot:MS e2el:MS")
      ->expected(1, 3);
  app.add_option(
      "--tenant", f.tenants,
      "KEY:RATE[:WEIGHT] (repeatable): a tenant's API key, its own arrival rate, and the "
      "weight its service is divided by in Jain's index (default 1)");
  app.add_option("--api-key", f.api_key, "Bearer key (without --tenant)");
  app.add_option("--save-result", f.save_result,
                 "Write the results as JSON (one object; an array of them for a sweep)");
  app.add_option("--vocab-size", f.vocab_size,
                 "Token ids of random prompts come from [4, N) (default: probe the server)")
      ->check(CLI::Range(8, 1 << 24));
  app.add_option("--eos-token-ids", f.eos_token_ids,
                 "EOS ids banned with logit_bias when the server refuses ignore_eos")
      ->delimiter(',');
  app.add_option("--request-timeout", f.request_timeout_s, "Seconds one request may take")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

constexpr int32_t kTokenIdLo = 4;  // skips pad/eos/bos/unk in Gemma's (and most) layouts

std::string now_string() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// Everything fixed before the runs: the server's answers and the request shape.
struct Setup {
  Flags flags;
  Endpoint endpoint;
  std::vector<TenantSpec> tenants;
  GoodputSlo slo;
  std::vector<double> rates;
  std::vector<int64_t> concurrencies;  // {0}: no limit
  RequestShape shape;
  std::string path;
  bool chat = false;
  bool tokenize = false;
  int32_t vocab_size = 0;
  std::vector<BenchPrompt> jsonl;  // --dataset jsonl, loaded once
};

// Chat prompts of random words, each fitted to its target token count (the whole rendered
// chat) with /tokenize when the server has it. Returns the prompts and whether every one
// hit its target exactly.
StatusOr<std::pair<std::vector<BenchPrompt>, bool>> word_prompts(const Setup& s, ServerProbe& probe,
                                                                 int64_t count, int64_t prefix_len,
                                                                 uint64_t seed) {
  const Flags& f = s.flags;
  SyntheticOptions opt{count, f.input_len, f.output_len, f.range_ratio, prefix_len, 0, 0, seed};
  if (!s.tokenize) return std::make_pair(make_word_prompts(opt, prefix_len), false);
  Status err;
  // A token count from /tokenize; a failure is kept in `err` (the fitter wants a number).
  auto tokens = [&](const std::string& prefix, const std::string& text, bool chat) {
    StatusOr<int64_t> n = probe.count_tokens(s.shape.model, prefix, text, chat);
    if (!n.is_ok() && err.is_ok()) err = n.status();
    return n.is_ok() ? *n : int64_t{0};
  };
  int64_t num_prefix_words = 0;
  if (prefix_len > 0) {  // the shared prefix alone, as plain text
    const std::vector<std::string> words = prefix_words(seed, 2 * prefix_len + 16);
    num_prefix_words =
        fit_word_count(prefix_len, static_cast<int64_t>(words.size()), prefix_len,
                       [&](int64_t k) { return tokens("", join_words(words, k), false); });
    SLUICE_RETURN_IF_ERROR(err);
  }
  std::vector<BenchPrompt> prompts = make_word_prompts(opt, num_prefix_words);
  bool exact = true;
  int64_t overhead = 0;  // tokens beyond one per word (template, prefix), learnt as we go
  fmt::print(stderr, "fitting {} prompts to their lengths with /tokenize...\n", prompts.size());
  for (BenchPrompt& p : prompts) {
    const int64_t k = fit_word_count(
        p.target_len, static_cast<int64_t>(p.words.size()), p.target_len - overhead,
        [&](int64_t k) { return tokens(p.prefix_text, join_words(p.words, k), true); });
    p.prompt_text = join_words(p.words, k);
    p.prompt_len = tokens(p.prefix_text, p.prompt_text, true);
    SLUICE_RETURN_IF_ERROR(err);
    overhead = p.prompt_len - k;
    p.prompt_len_exact = p.prompt_len == p.target_len;
    exact = exact && p.prompt_len_exact;
    p.words.clear();
  }
  return std::make_pair(std::move(prompts), exact);
}

// The prompts of one run, seeded with --seed + the run's index (so a sweep's runs do not
// hit each other's prefix-cache entries), and whether their input lengths are exact.
StatusOr<std::pair<std::vector<BenchPrompt>, bool>> make_prompts(const Setup& s, ServerProbe& probe,
                                                                 int64_t count, uint64_t seed) {
  const Flags& f = s.flags;
  const int64_t prefix_len = f.dataset == "prefix" ? f.prefix_len : 0;
  if (f.dataset == "jsonl") {
    std::vector<BenchPrompt> prompts;
    bool exact = true;
    for (int64_t i = 0; i < count; ++i)
      prompts.push_back(s.jsonl[static_cast<size_t>(i) % s.jsonl.size()]);
    for (BenchPrompt& p : prompts) {
      if (!p.prompt_ids.empty()) continue;
      if (s.tokenize) {
        SLUICE_ASSIGN_OR_RETURN(p.prompt_len,
                                probe.count_tokens(s.shape.model, "", p.prompt_text, s.chat));
        p.prompt_len_exact = true;
      } else {
        exact = false;  // only the server's usage will tell
      }
    }
    return std::make_pair(std::move(prompts), exact);
  }
  if (s.chat) return word_prompts(s, probe, count, prefix_len, seed);
  return std::make_pair(make_token_prompts({count, f.input_len, f.output_len, f.range_ratio,
                                            prefix_len, kTokenIdLo, s.vocab_size, seed}),
                        true);
}

Status prepare(Setup& s, SyncHttpClient& client, ServerProbe& probe) {
  const Flags& f = s.flags;
  SLUICE_RETURN_IF_ERROR(client.resolve());
  s.shape.model = f.model;
  if (s.shape.model.empty()) {
    SLUICE_ASSIGN_OR_RETURN(s.shape.model, probe.first_model());
  }
  s.tokenize = probe.has_tokenize(s.shape.model);
  if (f.dataset == "jsonl") {
    if (f.dataset_path.empty())
      return Status::invalid_argument("--dataset jsonl needs --dataset-path FILE");
    SLUICE_ASSIGN_OR_RETURN(s.jsonl, load_jsonl(f.dataset_path, f.num_prompts, f.output_len));
    if (s.chat) {
      for (const BenchPrompt& p : s.jsonl) {
        if (!p.prompt_ids.empty()) {
          return Status::invalid_argument(
              "--endpoint chat needs text prompts; this jsonl has token-id prompts");
        }
      }
    }
  } else if (f.dataset == "prefix" && f.prefix_len == 0) {
    return Status::invalid_argument("--dataset prefix needs --prefix-len N (N > 0)");
  }
  if (!s.chat && f.dataset != "jsonl") {
    s.vocab_size = f.vocab_size;
    if (s.vocab_size == 0) {
      const Clock::time_point t0 = Clock::now();
      SLUICE_ASSIGN_OR_RETURN(s.vocab_size, probe.probe_vocab_size(s.shape.model));
      fmt::print(
          stderr,
          "token ids accepted by {}: [0, {}) (probed in {:.1f} s; --vocab-size skips this)\n",
          s.shape.model, s.vocab_size, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (s.vocab_size <= kTokenIdLo + 1)
      return Status::invalid_argument(
          fmt::format("vocabulary of {} ids is too small", s.vocab_size));
  }
  BenchPrompt warm;
  warm.output_len = 2;
  if (s.chat || f.dataset == "jsonl") {
    warm.prompt_text = "Hello";
    const std::vector<int32_t>& ids =
        s.jsonl.front().prompt_ids;  // a token-id jsonl: two of its ids
    if (f.dataset == "jsonl" && !ids.empty())
      warm.prompt_ids.assign(ids.begin(), ids.begin() + std::min<size_t>(2, ids.size()));
  } else {
    warm.prompt_ids = {kTokenIdLo, kTokenIdLo + 1};
  }
  const Clock::time_point t0 = Clock::now();
  SLUICE_RETURN_IF_ERROR(probe.warm_up(&s.shape, s.path, warm));
  fmt::print(stderr, "warm-up request done in {:.1f} s\n",
             std::chrono::duration<double>(Clock::now() - t0).count());
  s.shape.banned_eos_ids = f.eos_token_ids;
  if (!s.shape.ignore_eos) {
    fmt::print(stderr, "warning: the server refuses ignore_eos; {}\n",
               f.eos_token_ids.empty()
                   ? "output lengths may fall short (give --eos-token-ids to ban EOS)"
                   : "banning --eos-token-ids with logit_bias instead");
  }
  return Status::ok();
}

int run(Flags flags) {
  Setup s;
  s.flags = std::move(flags);
  const Flags& f = s.flags;
  auto fail = [](const Status& st) {
    fmt::print(stderr, "sluice-bench: {}\n", st.message());
    return 1;
  };
  auto usage_error = [](const Status& st) {
    fmt::print(stderr, "sluice-bench: {}\n", st.message());
    return 2;
  };
  StatusOr<Endpoint> ep = parse_base_url(f.base_url);
  if (!ep.is_ok()) return usage_error(ep.status());
  s.endpoint = *ep;
  for (size_t i = 0; i < f.tenants.size(); ++i) {
    StatusOr<TenantSpec> t = parse_tenant(f.tenants[i], static_cast<int>(i));
    if (!t.is_ok()) return usage_error(t.status());
    s.tenants.push_back(*t);
  }
  StatusOr<GoodputSlo> slo = parse_goodput(f.goodput);
  if (!slo.is_ok()) return usage_error(slo.status());
  s.slo = *slo;
  StatusOr<std::vector<double>> rates = parse_rate_list(f.request_rate, "--request-rate");
  if (!rates.is_ok()) return usage_error(rates.status());
  s.rates = *rates;
  if (!s.tenants.empty()) {
    if (s.rates.size() != 1 || !std::isinf(s.rates.front())) {
      return usage_error(
          Status::invalid_argument("--tenant sets each tenant's rate: drop --request-rate"));
    }
    if (!f.api_key.empty())
      return usage_error(Status::invalid_argument("--tenant carries the keys: drop --api-key"));
  }
  s.concurrencies = {0};
  if (!f.max_concurrency.empty()) {
    StatusOr<std::vector<int64_t>> c = parse_count_list(f.max_concurrency, "--max-concurrency");
    if (!c.is_ok()) return usage_error(c.status());
    s.concurrencies = *c;
  }
  s.chat = f.endpoint == "chat";
  s.shape.endpoint = s.chat ? ApiEndpoint::kChat : ApiEndpoint::kCompletions;
  s.path = s.chat ? "/v1/chat/completions" : "/v1/completions";

  const std::string setup_key = s.tenants.empty() ? f.api_key : s.tenants.front().api_key;
  SyncHttpClient client(s.endpoint);
  ServerProbe probe(client, setup_key);
  if (Status st = prepare(s, client, probe); !st.is_ok()) return fail(st);

  std::vector<std::string> keys;
  std::vector<double> tenant_rates;
  for (const TenantSpec& t : s.tenants) {
    keys.push_back(t.api_key);
    tenant_rates.push_back(t.request_rate);
  }
  if (keys.empty()) keys.push_back(f.api_key);
  const int64_t per_run =
      f.num_prompts * static_cast<int64_t>(std::max<size_t>(1, s.tenants.size()));

  std::vector<RunReport> reports;
  nlohmann::json saved = nlohmann::json::array();
  uint64_t run_index = 0;
  for (double rate : s.rates) {
    for (int64_t conc : s.concurrencies) {
      const uint64_t seed = f.seed + run_index++;
      auto prompts = make_prompts(s, probe, per_run, seed);
      if (!prompts.is_ok()) return fail(prompts.status());
      RunPlan plan;
      plan.endpoint = s.endpoint;
      plan.shape = s.shape;
      plan.path = s.path;
      plan.prompts = std::move(prompts->first);
      if (s.tenants.empty()) {
        const std::vector<double> t = poisson_arrivals(per_run, rate, seed);
        for (int64_t i = 0; i < per_run; ++i)
          plan.arrivals.push_back({t[static_cast<size_t>(i)], i, -1});
      } else {
        plan.arrivals = tenant_schedule(f.num_prompts, tenant_rates, seed);
      }
      plan.api_keys = keys;
      plan.max_concurrency = conc;
      plan.request_timeout =
          std::chrono::milliseconds(static_cast<int64_t>(f.request_timeout_s * 1000));
      plan.label =
          s.tenants.empty()
              ? fmt::format("rate={} conc={}", std::isinf(rate) ? "inf" : fmt::format("{:g}", rate),
                            conc > 0 ? std::to_string(conc) : "none")
              : fmt::format("{} tenants conc={}", s.tenants.size(),
                            conc > 0 ? std::to_string(conc) : "none");
      const RunOutput out = run_benchmark(plan);

      RunInfo info;
      info.date = now_string();
      info.base_url = f.base_url;
      info.endpoint = f.endpoint;
      info.model_id = s.shape.model;
      info.dataset = f.dataset;
      info.num_prompts = per_run;
      // With tenants: the offered load, the sum of their rates.
      info.request_rate =
          s.tenants.empty() ? rate : std::accumulate(tenant_rates.begin(), tenant_rates.end(), 0.0);
      info.max_concurrency = conc;
      info.input_len = f.input_len;
      info.output_len = f.output_len;
      info.prefix_len = f.dataset == "prefix" ? f.prefix_len : 0;
      info.range_ratio = f.range_ratio;
      info.seed = seed;
      info.input_lens_exact = prompts->second;
      info.ignore_eos = s.shape.ignore_eos;
      info.goodput = s.slo;
      RunReport rep = make_report(std::move(info), out.results, out.duration_s,
                                  out.output_len_mismatches, s.tenants);
      fmt::print("{}", format_table(rep));
      std::fflush(stdout);
      saved.push_back(to_json(rep));
      reports.push_back(std::move(rep));
    }
  }
  if (reports.size() > 1) fmt::print("\n{}", format_sweep_summary(reports));
  if (!f.save_result.empty()) {
    std::ofstream out(f.save_result);
    out << (saved.size() == 1 ? saved.front() : saved).dump(2) << "\n";
    if (!out)
      return fail(
          Status::unavailable(fmt::format("--save-result {}: cannot write it", f.save_result)));
  }
  for (const RunReport& r : reports) {
    if (r.metrics.completed == 0) return 1;  // nothing worked: let scripts notice
  }
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-bench: load generator for OpenAI-compatible servers (vLLM's benchmark figures)"};
  sluice::bench::Flags flags;
  sluice::bench::add_flags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return sluice::bench::run(std::move(flags));
}
