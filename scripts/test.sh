#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's second command (and section 4 of .ci/run): installs what the build needs
# (scripts/deps.sh), then `cmake --workflow --preset test`: configure build/default (g++ Release,
# -Werror, nvcc for sm_80 and sm_90a when it is found), build every test, example, bench and header
# TU, and run every test (GPU tests report skipped without a device).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
specdec_deps "${specdec_build_packages[@]}"
exec cmake --workflow --preset test
