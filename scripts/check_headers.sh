#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Include-rule lint for include/specdec (STYLE C2, C3), run by .ci/run. Fails on:
#   core/   including <iostream> <vector> <string> <functional>, CUB/Thrust/CUDA headers, or any
#           specdec header outside core/ (config.hpp and version.hpp excepted);
#   core/   using std::min / std::max (comments ignored): use detail::min_f & co. from core/math.hpp;
#   host layers (everything but cuda/) including a specdec/cuda/ header or any .cuh;
#   any header whose line 1 is not an SPDX line, that lacks '#pragma once' or a '/// @file' block.
# Usage: scripts/check_headers.sh [repo root]     (default: the current directory)
set -euo pipefail

root="${1:-.}"
inc="$root/include/specdec"
if [[ ! -d "$inc" ]]; then
  echo "check_headers: no $inc" >&2
  exit 1
fi

fail=0
report() { # file:line: message
  echo "  $1" >&2
  fail=1
}

# Lines of code without // comments (keeps line numbers): file:line:text
strip_comments() { sed -e 's#//.*$##' "$1" | grep -n '' | sed -e "s#^#$1:#"; }

# --- core/ --------------------------------------------------------------------------------------
if [[ -d "$inc/core" ]]; then
  while IFS= read -r -d '' f; do
    while IFS= read -r hit; do
      report "$hit  <- core/ must stay cheap: no <iostream> <vector> <string> <functional>, CUB, Thrust, CUDA"
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(iostream|vector|string|functional|(cub|thrust|cuda|nv)/[^>]*|cuda_runtime[^>]*)>' "$f" | sed -e "s#^#$f:#" || true)
    while IFS= read -r hit; do
      report "$hit  <- core/ includes only core/ (and config.hpp, version.hpp)"
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<specdec/' "$f" \
               | grep -vE '<specdec/(core/[^>]+|config\.hpp|version\.hpp)>' | sed -e "s#^#$f:#" || true)
    while IFS= read -r hit; do
      report "$hit  <- no std::min/std::max in core/ (nvcc rejects them in HD code): use core/math.hpp"
    done < <(strip_comments "$f" | grep -E '\bstd::(min|max)\b' || true)
  done < <(find "$inc/core" -type f \( -name '*.hpp' -o -name '*.cuh' \) -print0 | sort -z)
fi

# --- host layers never see CUDA headers -----------------------------------------------------------
while IFS= read -r -d '' f; do
  while IFS= read -r hit; do
    report "$hit  <- a .hpp outside cuda/ must not include cuda/ headers or .cuh files"
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]*\.cuh|specdec/cuda/[^>"]*)[>"]' "$f" \
             | sed -e "s#^#$f:#" || true)
done < <(find "$inc" -type f -name '*.hpp' -not -path "$inc/cuda/*" -print0 | sort -z)

# --- every header opens with SPDX, #pragma once, @file -------------------------------------------
while IFS= read -r -d '' f; do
  head -n 1 "$f" | grep -qE '^// SPDX-License-Identifier: ' \
    || report "$f:1: first line must be '// SPDX-License-Identifier: ...'"
  head -n 5 "$f" | grep -qE '^#pragma once' || report "$f: '#pragma once' missing from its first lines"
  grep -qE '^///?[[:space:]]*[@\\]file\b' "$f" || report "$f: no '/// @file' block"
done < <(find "$inc" -type f \( -name '*.hpp' -o -name '*.cuh' \) -print0 | sort -z)

if [[ $fail -ne 0 ]]; then
  echo "check_headers: FAILED (rules: STYLE.md C2, C3)" >&2
  exit 1
fi
echo "check_headers: OK ($(find "$inc" -type f \( -name '*.hpp' -o -name '*.cuh' \) | wc -l) headers)"
