#include "engine/models/loader.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "common/log.h"
#include "engine/models/gemma3.h"
#include "engine/models/gemma4.h"
#include "engine/models/weight_binder.h"
#include "engine/weights/weight_source.h"

namespace sluice::models {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Quantized weights stay quantized only for the CPU backend (its kernels read the blocks)
// and unless SLUICE_CPU_WEIGHTS=f32 asks for the f32 reference path.
bool keep_quantized(const LoadOptions& options, const kernels::OpTable& ops) {
  if (!options.keep_quantized) return false;
  if (std::string_view(ops.backend).substr(0, 3) != "cpu") return false;
  const char* env = std::getenv("SLUICE_CPU_WEIGHTS");
  return env == nullptr || std::string_view(env) != "f32";
}

constexpr uint64_t kMaxJsonFileBytes = 64u << 20;

// Reads a small text file (config.json and friends), bounded in size.
StatusOr<std::string> read_text_file(const fs::path& p) {
  std::error_code ec;
  uint64_t size = fs::file_size(p, ec);
  if (ec) return Status::not_found(fmt::format("{}: cannot read ({})", p.string(), ec.message()));
  if (size > kMaxJsonFileBytes) {
    return Status::invalid_argument(fmt::format("{}: {} bytes, limit {}", p.string(), size, kMaxJsonFileBytes));
  }
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) return Status::invalid_argument(fmt::format("{}: read error", p.string()));
  return ss.str();
}

void add_unique(std::vector<int32_t>& v, int32_t id) {
  if (std::find(v.begin(), v.end(), id) == v.end()) v.push_back(id);
}

// generation_config.json: sampling defaults and extra stop ids. Absent keys stay unset.
Status read_generation_config(const fs::path& p, int vocab_size, GenerationDefaults* d) {
  SLUICE_ASSIGN_OR_RETURN(std::string text, read_text_file(p));
  json g = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!g.is_object()) return Status::invalid_argument(fmt::format("{}: not a JSON object", p.string()));
  auto num = [&](const char* k) -> std::optional<double> {
    if (g.contains(k) && g.at(k).is_number()) return g.at(k).get<double>();
    return std::nullopt;
  };
  if (auto v = num("temperature")) d->temperature = static_cast<float>(*v);
  if (auto v = num("top_p")) d->top_p = static_cast<float>(*v);
  if (g.contains("top_k") && g.at("top_k").is_number_integer()) d->top_k = g.at("top_k").get<int>();
  if (g.contains("eos_token_id")) {
    const json& e = g.at("eos_token_id");
    std::vector<json> items = e.is_array() ? e.get<std::vector<json>>() : std::vector<json>{e};
    for (const json& v : items) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size) {
        return Status::invalid_argument(fmt::format("{}: bad eos_token_id {}", p.string(), v.dump()));
      }
      add_unique(d->stop_token_ids, static_cast<int32_t>(v.get<int64_t>()));
    }
  }
  return Status::ok();
}

std::string base_name(const fs::path& p) {
  fs::path q = p;
  if (q.filename().empty()) q = q.parent_path();  // trailing slash
  if (fs::is_directory(q)) return q.filename().string();
  return q.stem().string();
}

}  // namespace

StatusOr<ModelFiles> open_model_files(const std::string& path, const ParallelConfig& parallel) {
  SLUICE_RETURN_IF_ERROR(check_parallel_config(parallel));
  ModelFiles files;
  LoadedModel& out = files.loaded;
  ModelConfig& config = files.config;
  std::shared_ptr<weights::WeightSource>& source = files.source;
  out.parallel = parallel;
  out.path = path;
  out.name = base_name(path);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir(path);
    if (!fs::exists(dir / "config.json")) {
      return Status::invalid_argument(fmt::format("{}: directory has no config.json", path));
    }
    SLUICE_ASSIGN_OR_RETURN(std::string cfg_text, read_text_file(dir / "config.json"));
    SLUICE_ASSIGN_OR_RETURN(config, parse_hf_config(cfg_text, (dir / "config.json").string()));
    SLUICE_ASSIGN_OR_RETURN(source, weights::WeightSource::open_safetensors_dir(path));
    if (fs::exists(dir / "tokenizer.json")) {
      fs::path tc = dir / "tokenizer_config.json";
      SLUICE_ASSIGN_OR_RETURN(out.tokenizer,
                              tokenizer::from_hf_json((dir / "tokenizer.json").string(),
                                                                 fs::exists(tc) ? tc.string() : std::string()));
    }
    if (fs::exists(dir / "tokenizer_config.json")) {
      SLUICE_ASSIGN_OR_RETURN(std::string tc_text, read_text_file(dir / "tokenizer_config.json"));
      json tc = json::parse(tc_text, nullptr, false);
      if (tc.is_object() && tc.contains("chat_template") && tc.at("chat_template").is_string()) {
        out.chat_template = tc.at("chat_template").get<std::string>();
      }
    }
    if (fs::exists(dir / "chat_template.jinja")) {
      SLUICE_ASSIGN_OR_RETURN(std::string t, read_text_file(dir / "chat_template.jinja"));
      out.chat_template = std::move(t);
    }
    for (int32_t e : config.eos_token_ids) add_unique(out.defaults.stop_token_ids, e);
    if (fs::exists(dir / "generation_config.json")) {
      SLUICE_RETURN_IF_ERROR(read_generation_config(dir / "generation_config.json", config.vocab_size, &out.defaults));
    }
  } else {
    SLUICE_ASSIGN_OR_RETURN(source, weights::WeightSource::open_gguf(path));
    const weights::GgufFile& gguf = *source->gguf();
    SLUICE_ASSIGN_OR_RETURN(config, config_from_gguf(gguf));
    if (gguf.find("tokenizer.ggml.tokens") != nullptr) {
      SLUICE_ASSIGN_OR_RETURN(out.tokenizer, tokenizer::from_gguf(gguf));
    }
    if (gguf.find("tokenizer.chat_template") != nullptr) {
      SLUICE_ASSIGN_OR_RETURN(std::string t, gguf.get_string("tokenizer.chat_template"));
      out.chat_template = std::move(t);
    }
    for (int32_t e : config.eos_token_ids) add_unique(out.defaults.stop_token_ids, e);
  }
  if (out.tokenizer) {
    if (out.tokenizer->vocab_size() > config.vocab_size) {
      return Status::invalid_argument(fmt::format(
          "{}: tokenizer has {} tokens but the model's vocabulary is {}", path,
          out.tokenizer->vocab_size(), config.vocab_size));
    }
    // As llama.cpp does: the end-of-turn token also ends generation.
    const char* eot_text = config.arch == Arch::kGemma4 ? "<turn|>" : "<end_of_turn>";
    if (auto eot = out.tokenizer->token_id(eot_text)) add_unique(out.defaults.stop_token_ids, *eot);
  }
  return files;
}

StatusOr<LoadedModel> load_model(const std::string& path, const LoadOptions& options,
                                 const kernels::OpTable& ops) {
  if (const char* missing = ops.first_missing()) {
    return Status::failed_precondition(fmt::format("backend '{}' lacks op {}", ops.backend, missing));
  }
  SLUICE_ASSIGN_OR_RETURN(ModelFiles files, open_model_files(path, options.parallel));
  LoadedModel out = std::move(files.loaded);
  ModelConfig config = std::move(files.config);
  // Multimodal checkpoints: the binder finds the text model under its prefix, and the vision
  // and audio towers are never read.
  WeightBinder binder(files.source, options.keep_bf16);
  binder.set_keep_quantized(keep_quantized(options, ops));
  if (config.arch == Arch::kGemma4) {
    SLUICE_ASSIGN_OR_RETURN(out.model, Gemma4Model::load(std::move(config), std::move(binder), ops));
  } else {
    SLUICE_ASSIGN_OR_RETURN(out.model, Gemma3Model::load(std::move(config), std::move(binder), ops));
  }
  return out;
}

}  // namespace sluice::models
