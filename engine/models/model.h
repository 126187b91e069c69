#pragma once
// Model: the forward pass of one decoder, written once against the op table. The engine (or
// `sluice generate`) owns the sequence's KV state and asks for logits where it samples.
//
// Data flow of one call: token ids -> embeddings [T, H] -> layers (K/V appended to the
// sequence's cache) -> final norm of the rows that need logits -> logits [rows, vocab].

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "engine/models/model_config.h"
#include "kernels/ops.h"

namespace sluice::models {

// Contiguous per-layer K/V of one sequence: layer l holds k[l], v[l] as [capacity, nkv, d] f32.
// Grows on demand (doubling) up to the model's context length.
class SequenceKv {
 public:
  explicit SequenceKv(const ModelConfig& config);
  // Makes room for `num_tokens` positions in every layer (keeps existing content).
  void reserve(int num_tokens);
  int capacity() const { return capacity_; }
  int num_tokens = 0;  // positions already written

  kernels::Tensor k(int layer, int num_positions);  // [num_positions, nkv, d] view
  kernels::Tensor v(int layer, int num_positions);
  float* k_row(int layer, int pos);  // start of position `pos` in layer `layer`
  float* v_row(int layer, int pos);

 private:
  const ModelConfig& config_;
  int capacity_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;

  // Runs `tokens` of one sequence at positions [kv.num_tokens, kv.num_tokens + T), appends
  // their K/V to `kv` and advances kv.num_tokens by T. Writes the logits of the last
  // `num_logit_rows` tokens (1 <= num_logit_rows <= T) into `logits` [num_logit_rows, vocab],
  // soft-capped when the model caps them. Token ids must be in [0, vocab) and the positions
  // within the context length: both are checked here and reported as INVALID_ARGUMENT.
  virtual Status forward(std::span<const int32_t> tokens, SequenceKv& kv, int num_logit_rows,
                         std::span<float> logits) = 0;
};

}  // namespace sluice::models
