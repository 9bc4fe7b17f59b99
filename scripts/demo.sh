#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command: installs what the build needs (scripts/deps.sh), then configures
# (preset 'default', build/default), builds and runs the demo, speculative decoding on stories260K
# (examples/02_speculative_generate.cpp). Extra arguments go to the demo program, e.g.
#   scripts/demo.sh --drafter early-exit --layers 2 --temperature 1 --seed 7
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
specdec_deps "${specdec_build_packages[@]}"
cmake --preset default >/dev/null
cmake --build --preset default --target specdec.example.02_speculative_generate
exec build/default/examples/speculative_generate "$@"
