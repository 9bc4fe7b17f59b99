#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Sourced by scripts/demo.sh, scripts/test.sh and .ci/run: makes sure the Debian packages a build
# needs are installed. `specdec_deps <package>...` installs the missing ones with apt-get when it
# may (root, or password-less sudo), else prints the exact command to run and returns 1.
# Also puts /usr/local/cuda/bin on PATH when it exists (nvcc is optional for the demo and tests).

# The packages of the README's two commands: CMake >= 3.25 with Ninja, g++ 12, Catch2 2.x,
# Eigen 3, Google Benchmark, valgrind (the vectorisation guard counts instructions with it).
specdec_build_packages=(cmake ninja-build g++ catch2 libeigen3-dev libbenchmark-dev valgrind)

specdec_missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || echo "$p"
  done
}

specdec_deps() {
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "specdec: not a Debian/Ubuntu system; install by hand: CMake >= 3.25, Ninja, g++ >= 12" \
         "(or clang++ >= 14), Catch2 2.x, Eigen 3.3+, Google Benchmark" >&2
    return 0 # let CMake say precisely what it cannot find
  fi
  local missing
  mapfile -t missing < <(specdec_missing_packages "$@")
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "specdec: missing Debian packages: ${missing[*]}" >&2
      echo "specdec: run this once, then the same command again:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "specdec: installing the missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq || return 1
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null || return 1
}

if [[ -d /usr/local/cuda/bin && ":$PATH:" != *":/usr/local/cuda/bin:"* ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
