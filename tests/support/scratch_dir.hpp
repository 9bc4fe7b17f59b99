// SPDX-License-Identifier: Apache-2.0
#pragma once
// A fresh folder under the temporary directory for tests that write files (hostile model and
// tokenizer files, head files), removed with everything in it at scope exit.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace specdec_test {

/// A fresh folder `<tmp>/<prefix>_<ticks>_<random>`, removed at scope exit.
class scratch_dir {
public:
  explicit scratch_dir(const std::string& prefix) {
    std::random_device rd;
    const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
    dir_ = std::filesystem::temp_directory_path()
           / (prefix + "_" + std::to_string(ticks) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  /// The path of `name` in the folder (nothing is created).
  std::string file(const std::string& name) const {
    return (dir_ / name).string();
  }
  /// Writes `bytes` to `name` in the folder; returns the file's path.
  std::string write(const std::string& name, const std::vector<char>& bytes) const {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

private:
  std::filesystem::path dir_;
};

} // namespace specdec_test
