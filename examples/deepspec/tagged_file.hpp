// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The one way examples/deepspec opens its safetensors files (data splits, drafter
///        checkpoints): load and validate, then check the metadata `format` tag (check_tag, also
///        for a file parsed from memory), with a reason prefixed by the path on failure.

#include <specdec/core/status.hpp>
#include <specdec/io/safetensors.hpp>

#include <string>

namespace deepspec {

/// @brief A failure with a reason: sets `*detail` (when not null) to "path: why".
inline specdec::status fail_with(specdec::errc code,
                                 const std::string& path,
                                 const std::string& why,
                                 std::string* detail) {
  if (detail != nullptr)
    *detail = path + ": " + why;
  return specdec::status{code};
}

/// @brief Requires the metadata entry `format` == `tag` in a parsed file.
/// @param[in] f the file
/// @param[in] tag the expected value of `format`
/// @param[in] name what `*detail` is prefixed with (the path)
/// @param[out] detail optional: "name: not a <tag> file (metadata 'format')" on error; left
///   alone on success
/// @return ok; corrupt_data when the tag is missing or different
inline specdec::status check_tag(const specdec::io::safetensors_file& f,
                                 const char* tag,
                                 const std::string& name,
                                 std::string* detail) {
  const auto it = f.metadata().find("format");
  if (it == f.metadata().end() || it->second != tag)
    return fail_with(specdec::errc::corrupt_data,
                     name,
                     std::string("not a ") + tag + " file (metadata 'format')",
                     detail);
  return specdec::status{};
}

/// @brief Loads `path` into `f` and requires the metadata entry `format` == `tag` (check_tag).
/// @return the loader's status (with its detail, which names the path), or check_tag's
inline specdec::status open_tagged(const std::string& path,
                                   const char* tag,
                                   specdec::io::safetensors_file& f,
                                   std::string* detail) {
  std::string why;
  if (const specdec::status s = specdec::io::safetensors_file::load(path, f, &why); !s.ok()) {
    if (detail != nullptr)
      *detail = why;
    return s;
  }
  return check_tag(f, tag, path, detail);
}

} // namespace deepspec
