#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Include-rule lint for include/specdec (STYLE C2, C3), run by .ci/run. Fails on:
#   core/   including <iostream> <vector> <string> <functional>, CUB/Thrust/CUDA headers, or any
#           specdec header outside core/ (config.hpp and version.hpp excepted);
#   core/   using std::min / std::max (comments ignored): use detail::min_f & co. from core/math.hpp;
#   host layers (everything but cuda/) including a specdec/cuda/ header or any .cuh;
#   any header whose line 1 is not an SPDX line, that lacks '#pragma once' or a '/// @file' block;
#   any include that runs up a floor of the layer table below (README "Layers"): a header may
#   include headers of its own folder and of strictly lower floors only, and sched/ sees
#   propose/ only through propose/concepts.hpp.
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

# --- layer order (README "Layers"; lowest first) ------------------------------------------------
# floor  folders                        may include
#   0    config.hpp version.hpp         each other
#   1    core/                          floor 0
#   2    sampling/ tree/ kv/ calib/     floors 0-1 (no edges between these six folders)
#        io/ train/
#   3    verify/                        floors 0-2
#   4    cpu/                           floors 0-3
#   5    propose/                       floors 0-4
#   6    sched/                         floors 0-4 and propose/concepts.hpp only
#   7    cuda/                          floors 0-6 (every host layer but decode/)
#   8    decode/                        floors 0-6 (never cuda/: host rule above)
#   9    specdec.hpp specdec.cuh        everything (umbrellas; .cuh includes .hpp)
floor_of() { # path relative to include/specdec -> floor number (empty when unknown)
  case "$1" in
    config.hpp | version.hpp) echo 0 ;;
    core/*) echo 1 ;;
    sampling/* | tree/* | kv/* | calib/* | io/* | train/*) echo 2 ;;
    verify/*) echo 3 ;;
    cpu/*) echo 4 ;;
    propose/*) echo 5 ;;
    sched/*) echo 6 ;;
    cuda/*) echo 7 ;;
    decode/*) echo 8 ;;
    specdec.hpp | specdec.cuh) echo 9 ;;
    *) echo "" ;;
  esac
}
folder_of() { case "$1" in */*) echo "${1%%/*}" ;; *) echo "$1" ;; esac; }

while IFS= read -r -d '' f; do
  rel="${f#"$inc"/}"
  from="$(floor_of "$rel")"
  if [[ -z "$from" ]]; then
    report "$f: not in the layer table of scripts/check_headers.sh (add its folder)"
    continue
  fi
  while IFS=: read -r line target; do
    to="$(floor_of "$target")"
    if [[ -z "$to" ]]; then
      report "$f:$line: includes <specdec/$target>, which is in no layer"
      continue
    fi
    [[ "$(folder_of "$rel")" == "$(folder_of "$target")" ]] && continue # own folder
    if [[ "$rel" == sched/* && "$target" == propose/* && "$target" != propose/concepts.hpp ]]; then
      report "$f:$line: <specdec/$target>  <- sched/ sees proposers only through propose/concepts.hpp"
    elif ((to > from)) || ((to == from && from != 0 && from != 9)); then
      report "$f:$line: <specdec/$target>  <- runs up the layer order (floor $from includes floor $to)"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<specdec/[^>]+>' "$f" \
             | sed -E 's#^([0-9]+):[^<]*<specdec/([^>]+)>.*#\1:\2#' || true)
done < <(find "$inc" -type f \( -name '*.hpp' -o -name '*.cuh' \) -print0 | sort -z)

# --- every header opens with SPDX, #pragma once, @file -------------------------------------------
while IFS= read -r -d '' f; do
  head -n 1 "$f" | grep -qE '^// SPDX-License-Identifier: ' \
    || report "$f:1: first line must be '// SPDX-License-Identifier: ...'"
  head -n 5 "$f" | grep -qE '^#pragma once' || report "$f: '#pragma once' missing from its first lines"
  grep -qE '^///?[[:space:]]*[@\\]file\b' "$f" || report "$f: no '/// @file' block"
done < <(find "$inc" -type f \( -name '*.hpp' -o -name '*.cuh' \) -print0 | sort -z)

if [[ $fail -ne 0 ]]; then
  echo "check_headers: FAILED (rules: STYLE.md C2, C3; layer table above)" >&2
  exit 1
fi
echo "check_headers: OK ($(find "$inc" -type f \( -name '*.hpp' -o -name '*.cuh' \) | wc -l) headers)"
