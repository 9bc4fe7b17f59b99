// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The incremental stop-string matcher shared by the chain and tree decoding loops
///        (internal: decode::detail).

#include <specdec/config.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

namespace detail {

/// Appends the text of each emitted token and reports whether a stop string ends inside the new
/// text. Only the last (longest stop + new text) characters are kept, so a check is
/// O(longest stop x stop count).
class stop_matcher {
public:
  /// Starts a generation: forgets the text and measures the longest stop string.
  void reset(const std::vector<std::string>& stops) {
    text_.clear();
    longest_ = 0;
    for (const std::string& s : stops)
      longest_ = std::max(longest_, s.size());
  }
  /// True when some stop string is non-empty (otherwise the caller need not detokenize).
  [[nodiscard]] bool active() const noexcept {
    return longest_ > 0;
  }
  /// Appends `piece`; true when one of `stops` ends inside it.
  bool append(const std::vector<std::string>& stops, const std::string& piece) {
    const std::size_t old_size = text_.size();
    text_ += piece;
    bool hit = false;
    for (const std::string& s : stops) {
      if (s.empty())
        continue;
      // A match must end inside the new piece: it starts at or after old_size + 1 - s.size().
      const std::size_t from = old_size + 1 > s.size() ? old_size + 1 - s.size() : 0;
      if (text_.find(s, from) != std::string::npos) {
        hit = true;
        break;
      }
    }
    if (text_.size() > longest_)
      text_.erase(0, text_.size() - longest_);
    return hit;
  }

private:
  std::string text_;
  std::size_t longest_ = 0;
};

} // namespace detail

} // namespace decode

SPECDEC_NAMESPACE_END
