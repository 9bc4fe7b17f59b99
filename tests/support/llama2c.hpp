// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test support for the llama2.c backend tests:
//  - model_path / tokenizer_path: stories260K.bin and tok512.bin in the default model folder;
//  - shared_model: the model, loaded once per test binary (a Catch2 failure on every use when it
//    cannot be loaded); shared_model_once: the same with the loader's detail, reported once;
//  - shared_tokenizer: tok512.bin (vocabulary 512), loaded once;
//  - file_bytes / write_temp / load_bytes: whole files as bytes, bytes to a file in the temporary
//    folder, and the status code of loading such bytes as a model.

#include <catch2/catch.hpp>

#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace specdec_test {

inline std::string model_path() {
  return llama2c::default_model_dir() + "/stories260K.bin";
}

inline std::string tokenizer_path() {
  return llama2c::default_model_dir() + "/tok512.bin";
}

inline llama2c::model& shared_model() {
  static llama2c::model m;
  static const bool ok = llama2c::model::load(model_path(), m).ok();
  if (!ok)
    FAIL("cannot load " << model_path() << " (set SPECDEC_MODEL_DIR)");
  return m;
}

inline llama2c::model& shared_model_once() {
  static llama2c::model m;
  static const bool ok = [] {
    std::string detail;
    const specdec::status s = llama2c::model::load(model_path(), m, &detail);
    if (!s.ok())
      FAIL("cannot load stories260K.bin from " << llama2c::default_model_dir() << ": " << detail
                                               << " (set SPECDEC_MODEL_DIR)");
    return s.ok();
  }();
  (void)ok;
  return m;
}

inline const llama2c::tokenizer& shared_tokenizer() {
  static llama2c::tokenizer t;
  static const bool ok = llama2c::tokenizer::load(tokenizer_path(), 512, t).ok();
  if (!ok)
    FAIL("cannot load " << tokenizer_path() << " (set SPECDEC_MODEL_DIR)");
  return t;
}

inline std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Writes `bytes` to `name` in the temporary folder; returns the file's path.
inline std::string write_temp(const std::string& name, const std::vector<char>& bytes) {
  const std::string p = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(p, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

/// The status code of loading `bytes`, written to `name` in the temporary folder, as a model.
inline specdec::errc load_bytes(const std::string& name, const std::vector<char>& bytes) {
  llama2c::model m;
  return llama2c::model::load(write_temp(name, bytes), m).code;
}

} // namespace specdec_test
