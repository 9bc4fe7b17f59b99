// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Loads an example's target and tokenizer, reporting a failure on stderr as
///        `<program>: cannot load ...` (examples 04 and 06).

#include "llama2c/model.hpp"
#include "llama2c/tokenizer.hpp"
#include <cstdio>
#include <string>

namespace llama2c {

/// @brief Loads the model at `model_path` into `m` and its tokenizer at `tokenizer_path` into
///        `tok`; on failure prints one line naming `program`, the file and the reason.
/// @param[in] program the example's name, for the message
/// @param[in] model_path the checkpoint
/// @param[in] tokenizer_path the tokenizer
/// @param[out] m the model
/// @param[out] tok the tokenizer
/// @return true when both loaded
/// @par Complexity
/// That of model::load and tokenizer::load.
inline bool load_model_and_tokenizer(const char* program,
                                     const std::string& model_path,
                                     const std::string& tokenizer_path,
                                     model& m,
                                     tokenizer& tok) {
  std::string detail;
  if (const specdec::status s = model::load(model_path, m, &detail); !s.ok()) {
    std::fprintf(stderr,
                 "%s: cannot load the model '%s': %s %s\n",
                 program,
                 model_path.c_str(),
                 s.message(),
                 detail.c_str());
    return false;
  }
  if (const specdec::status s = tokenizer::load(tokenizer_path, m.vocab_size(), tok, &detail);
      !s.ok()) {
    std::fprintf(stderr,
                 "%s: cannot load the tokenizer '%s': %s %s\n",
                 program,
                 tokenizer_path.c_str(),
                 s.message(),
                 detail.c_str());
    return false;
  }
  return true;
}

} // namespace llama2c
