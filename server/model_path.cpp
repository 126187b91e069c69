#include "server/model_path.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace sluice::server {
namespace fs = std::filesystem;

namespace {
// The repository root when running from build/bin/ of a checkout.
std::string repo_models_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (exe.parent_path().parent_path().parent_path() / "models").string();
}
}  // namespace

StatusOr<std::string> resolve_model_path(const std::string& spec) {
  if (spec != "default") {
    std::error_code ec;
    if (!fs::exists(spec, ec)) {
      return Status::not_found(fmt::format("--model {}: no such file or directory", spec));
    }
    return spec;
  }
  if (const char* env = std::getenv("SLUICE_DEFAULT_MODEL"); env != nullptr && *env != '\0') {
    std::error_code ec;
    if (!fs::exists(env, ec)) {
      return Status::not_found(fmt::format("SLUICE_DEFAULT_MODEL={}: no such file", env));
    }
    return std::string(env);
  }
  std::vector<std::string> candidates;
  if (std::string dir = repo_models_dir(); !dir.empty()) candidates.push_back(dir + "/" + kDefaultModelFile);
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    candidates.push_back(std::string(home) + "/.cache/sluice/" + kDefaultModelFile);
  }
  for (const std::string& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
  }
  return Status::not_found(fmt::format(
      "--model default: {} not found in the repository's models/ or ~/.cache/sluice/; run "
      "scripts/install-deps.sh (it installs the model) or pass --model PATH",
      kDefaultModelFile));
}

}  // namespace sluice::server
