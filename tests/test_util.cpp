#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::testing {

std::string source_dir() {
  const char* d = std::getenv("SLUICE_SOURCE_DIR");
  return d ? std::string(d) : std::string(".");
}

std::string fixture_path(const std::string& rel) { return source_dir() + "/tests/fixtures/" + rel; }

std::string shared_data_path(const std::string& rel) {
  return source_dir() + "/../shared/data/" + rel;
}

std::string default_model_path() {
  if (const char* env = std::getenv("SLUICE_DEFAULT_MODEL"); env && *env) return env;
  std::string p = source_dir() + "/models/gemma-3-270m-q4_k_m.gguf";
  return std::filesystem::exists(p) ? p : std::string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string scratch_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "." + std::to_string(getpid())))
      .string();
}

}  // namespace sluice::testing
