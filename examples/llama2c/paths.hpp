// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Where the llama2.c example models live: `$SPECDEC_MODEL_DIR`, else the directory the
///        build compiled in (`SPECDEC_DEFAULT_MODEL_DIR`), else `models`.
///
/// The model files (stories260K.bin, tok512.bin) are never part of the repository: see
/// shared/models/README.md for their origin and a public download location.

#include <cstdlib>
#include <string>

/// @namespace llama2c
/// @brief A small header-only llama2.c backend (model, tokenizer) used by specdec's examples,
///        tests and benchmarks. It is example code: not part of the installed specdec library.
namespace llama2c {

/// @brief The directory holding the example model files.
///
/// Order: the environment variable `SPECDEC_MODEL_DIR` when set and non-empty; else the compile
/// definition `SPECDEC_DEFAULT_MODEL_DIR` (the build sets it to `<repo>/../shared/models`); else
/// the relative path `models`.
/// @return the directory, without a trailing separator added
/// @par Complexity
/// O(length of the path).
inline std::string default_model_dir() {
  if (const char* env = std::getenv("SPECDEC_MODEL_DIR"); env != nullptr && env[0] != '\0')
    return std::string(env);
#if defined(SPECDEC_DEFAULT_MODEL_DIR)
  return std::string(SPECDEC_DEFAULT_MODEL_DIR);
#else
  return std::string("models");
#endif
}

} // namespace llama2c
