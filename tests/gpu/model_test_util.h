#pragma once
// Helpers of the CUDA model tests (gemma3_gpu_test.cpp, gemma4_gpu_test.cpp).

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/half.h"
#include "test_util.h"

namespace sluice::testing {

// A copy of the safetensors fixture at `src` in `dst` with every F32 tensor rounded to BF16
// (nearest even), the other files copied as they are: the weights the GPU runs, so the CPU
// model can run them too.
inline void write_bf16_copy(const std::filesystem::path& src, const std::filesystem::path& dst) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    if (e.path().filename() != "model.safetensors") {
      fs::copy_file(e.path(), dst / e.path().filename(), fs::copy_options::overwrite_existing);
    }
  }
  const std::string bytes = read_file((src / "model.safetensors").string());
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  const json in = json::parse(bytes.substr(8, hlen));
  const char* data = bytes.data() + 8 + hlen;
  json out = json::object();
  std::string body;
  for (const auto& [name, t] : in.items()) {
    if (name == "__metadata__") {
      out[name] = t;
      continue;
    }
    const uint64_t begin = t["data_offsets"][0], end = t["data_offsets"][1];
    std::string dtype = t["dtype"];
    const uint64_t at = body.size();
    if (dtype == "F32") {
      for (uint64_t i = begin; i < end; i += 4) {
        float v;
        std::memcpy(&v, data + i, 4);
        const uint16_t h = f32_to_bf16(v);
        body.append(reinterpret_cast<const char*>(&h), 2);
      }
      dtype = "BF16";
    } else {
      body.append(data + begin, end - begin);
    }
    out[name] = {{"dtype", dtype},
                 {"shape", t["shape"]},
                 {"data_offsets", {at, static_cast<uint64_t>(body.size())}}};
  }
  std::string h = out.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream f(dst / "model.safetensors", std::ios::binary);
  const uint64_t n = h.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(body.data(), static_cast<std::streamsize>(body.size()));
}

}  // namespace sluice::testing
