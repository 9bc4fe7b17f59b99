#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Formats every C++/CUDA source in place with clang-format-14 (.clang-format), as CI checks them.
# Usage: scripts/format.sh [files...]     (default: everything under include tests examples bench)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fmt="${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format)}"
if [[ $# -gt 0 ]]; then
  "$fmt" -i "$@"
else
  find include tests examples bench -type f \
    \( -name '*.hpp' -o -name '*.cuh' -o -name '*.cpp' -o -name '*.cu' \) -print0 2>/dev/null \
    | xargs -0 -r "$fmt" -i
fi
