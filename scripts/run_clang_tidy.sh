#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# clang-tidy (config: .clang-tidy, tests/.clang-tidy) over the host TUs, which covers the shared
# headers through HeaderFilterRegex: tests/**/*.cpp (but the Catch2 main) and examples/*.cpp.
# clang-tidy 14 cannot parse .cu files against CUDA 13 headers, so they are left out.
# Usage: scripts/run_clang_tidy.sh [build dir with compile_commands.json] (default: build/default)
#        CLANG_TIDY=clang-tidy-14  JOBS=$(nproc)
set -euo pipefail

build="${1:-build/default}"
tidy="${CLANG_TIDY:-$(command -v clang-tidy-14 || command -v clang-tidy || true)}"
jobs="${JOBS:-$(nproc)}"
db="$build/compile_commands.json"
if [[ -z "$tidy" ]]; then
  echo "run_clang_tidy: clang-tidy-14 not found (apt-get install clang-tidy-14)" >&2
  exit 1
fi
if [[ ! -f "$db" ]]; then
  echo "run_clang_tidy: $db not found: configure first (cmake --preset default)" >&2
  exit 1
fi

root="$(pwd)"
mapfile -t files < <(grep -oE '"file": "[^"]+"' "$db" | sed -e 's/^"file": "//' -e 's/"$//' \
  | grep -E "^$root/(tests/.+|examples/[^/]+)\.cpp$" | grep -vE "^$root/tests/(main\.cpp|install/)" \
  | sort -u)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "run_clang_tidy: no host test or example TU in $db" >&2
  exit 1
fi
echo "run_clang_tidy: $tidy on ${#files[@]} TUs, $jobs jobs"
printf '%s\0' "${files[@]}" \
  | xargs -0 -n 1 -P "$jobs" "$tidy" -p "$build" --quiet
echo "run_clang_tidy: OK"
