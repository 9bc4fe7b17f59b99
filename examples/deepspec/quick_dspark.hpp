// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A small DSpark drafter trained in a few seconds (example code): the target writes 96
///        short stories, a 2-layer block drafter with a Markov head of rank `rank` and a
///        confidence head learns them for `steps` steps with DeepSpec's loss. Examples 04 and 06
///        train one at start-up when they are not given a drafter file.

#include "deepspec/block_train.hpp"
#include "deepspec/data.hpp"
#include "llama2c/model.hpp"
#include "llama2c/tokenizer.hpp"
#include <algorithm>
#include <cstdint>
#include <string>

namespace deepspec {

/// @brief Trains the small DSpark drafter described in the file comment into W.
/// @param[in] model_path the target checkpoint
/// @param[in] tok its tokenizer
/// @param[in] E the frozen embedding / classifier
/// @param[in] gamma the block size
/// @param[in] rank the Markov head's rank
/// @param[in] steps training steps
/// @param[in] seed the seed of the data and of the initialisation
/// @param[out] W the trained weights
/// @return the first failure of loading, data generation or training
inline specdec::status train_small_dspark(const std::string& model_path,
                                          const llama2c::tokenizer& tok,
                                          const mat<float>& E,
                                          int gamma,
                                          specdec::index_t rank,
                                          int steps,
                                          std::uint64_t seed,
                                          block_weights<float>& W) {
  using specdec::status;
  llama2c::model target;
  if (const status s = llama2c::model::load(model_path, target); !s.ok())
    return s;
  data_options d;
  d.sequences = 96;
  d.max_new = 64;
  d.seed = seed + 1000;
  d.progress = false;
  dataset train, none;
  if (const status s = generate_dataset(target, tok, d, train); !s.ok())
    return s;
  block_config c;
  c.dim = static_cast<int>(target.hidden_size());
  c.heads = target.cfg().n_heads;
  c.kv_heads = target.cfg().n_kv_heads;
  c.ffn = target.cfg().hidden_dim;
  c.vocab = static_cast<int>(target.vocab_size());
  const int L = target.num_layers();
  c.layers = {1, std::max(1, L / 2 + 1), std::max(1, L - 1)};
  c.n_layers = 2;
  c.block = gamma;
  c.head = block_head::markov;
  c.rank = static_cast<int>(rank);
  c.confidence = true;
  if (const status s = c.validate(); !s.ok())
    return s;
  W.init(c, seed);
  block_train_options t;
  t.batch = 8;
  t.max_steps = steps;
  t.epochs = steps * t.batch / static_cast<int>(train.size()) + 1;
  t.anchors = 32;
  t.seed = seed;
  t.quiet = true;
  t.log_every = 0;
  t.eval_sequences = 0;
  train_result r;
  return train_block_drafter(W, E, model_path, train, none, t, r);
}

} // namespace deepspec
