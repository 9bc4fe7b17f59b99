// SPDX-License-Identifier: Apache-2.0
//
// The replay driver: a main() for a fuzz target built without libFuzzer (any compiler). It feeds
// every file of the folders and files named on the command line, in sorted order, to
// LLVMFuzzerTestOneInput, so the regression seeds run in every build and the targets keep
// compiling under g++ -Werror.
//
//   specdec.fuzz.<name>.replay <file or folder>...    replay (arguments starting with '-' are
//                                                     ignored, as libFuzzer options)
//   specdec.fuzz.<name>.replay --write-seeds <folder> write the target's generated seeds
//
// Like libFuzzer's -malloc_limit_mb, any single allocation through operator new above
// SPECDEC_FUZZ_MALLOC_LIMIT_MB (default 1024) aborts with a message: a loader that sizes a buffer
// from a hostile header fails here even where the allocation itself would have succeeded.
// Exit status: 0 when every input ran (a failed property aborts), 1 on usage errors or when no
// input was found.

#include "support/fuzz_input.hpp"
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <string_view>
#include <vector>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's name
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::size_t allocation_limit() {
  static const std::size_t limit = [] {
    const char* env = std::getenv("SPECDEC_FUZZ_MALLOC_LIMIT_MB");
    const long long mb = env != nullptr ? std::atoll(env) : 1024;
    return mb > 0 ? static_cast<std::size_t>(mb) << 20 : static_cast<std::size_t>(-1);
  }();
  return limit;
}

void* checked_alloc(std::size_t n, std::size_t align) {
  if (n > allocation_limit()) {
    std::fprintf(stderr,
                 "\n*** fuzz replay: one allocation of %zu bytes, above the limit of %zu MiB "
                 "(SPECDEC_FUZZ_MALLOC_LIMIT_MB)\n",
                 n,
                 allocation_limit() >> 20);
    std::abort();
  }
  if (n == 0)
    n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t))
    p = std::malloc(n);
  else
    p = std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr)
    throw std::bad_alloc{};
  return p;
}

[[gnu::noinline]] void release(void* p) noexcept {
  std::free(p);
}

int write_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (const specdec_fuzz::seed& s : specdec_fuzz::seeds()) {
    std::ofstream f(dir / s.name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(s.bytes.data()),
            static_cast<std::streamsize>(s.bytes.size()));
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", (dir / s.name).c_str());
      return 1;
    }
    std::printf("%s (%zu bytes)\n", (dir / s.name).c_str(), s.bytes.size());
  }
  return 0;
}

void run_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  const std::vector<char> bytes{std::istreambuf_iterator<char>(f),
                                std::istreambuf_iterator<char>()};
  std::fprintf(stderr, "replay %s (%zu bytes)\n", p.c_str(), bytes.size());
  // A copy of exactly the input's size, so that reads past the end are caught by ASan.
  std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  (void)LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
}

} // namespace

void* operator new(std::size_t n) {
  return checked_alloc(n, 0);
}
void* operator new[](std::size_t n) {
  return checked_alloc(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return checked_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return checked_alloc(n, static_cast<std::size_t>(a));
}
// The nothrow forms too (std::get_temporary_buffer uses them): every allocation of the harness
// then goes through one allocator, so delete never frees what another operator new returned.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return checked_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return checked_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  release(p);
}
void operator delete[](void* p) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--write-seeds")
    return write_seeds(argv[2]);
  std::size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-')
      continue;
    const std::filesystem::path arg(argv[i]);
    if (std::filesystem::is_directory(arg)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg))
        if (e.is_regular_file())
          files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files)
        run_file(f);
      count += files.size();
    } else if (std::filesystem::is_regular_file(arg)) {
      run_file(arg);
      ++count;
    } else {
      std::fprintf(stderr, "fuzz replay: %s is neither a file nor a folder\n", argv[i]);
      return 1;
    }
  }
  if (count == 0) {
    std::fprintf(stderr,
                 "usage: %s <seed file or folder>... | --write-seeds <folder>\n"
                 "(no input found)\n",
                 argv[0]);
    return 1;
  }
  std::printf("fuzz replay: %zu inputs, every property held\n", count);
  return 0;
}
