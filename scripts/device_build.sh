#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Device check, half 1 of 2: runs HERE (no GPU needed). The lent GPU machine has nvcc, CMake,
# ninja and PyTorch but none of our Debian packages (no Catch2, Eigen, Google Benchmark) and
# nothing installs there, so everything is built on this machine and only run there.
#   1. configure the 'device' preset (build/device: CUDA required, sm_90a, Release, no header TUs)
#   2. build only the GPU test binaries (specdec.test.cuda.*) and the CUDA benches
#      (specdec.bench.cuda.*)
#   3. gather them, the shared libraries they load (not libc, libm, the dynamic loader nor the
#      CUDA driver libcuda, which must come from the device machine) and scripts/device_run.sh
#      into one folder, build/device-bundle (at most 64 MiB: the device tool's carry limit)
#   4. run the bundle here: every GPU test must report "no CUDA device" (exit 77, skipped) and
#      every bench must skip with "no CUDA device", which proves the folder is self-contained up
#      to the point where a GPU is needed
# Then, with the device tool (one call, well under 10 minutes):
#   run(command="build/device-bundle/run.sh", carry=["build/device-bundle"], timeout_s=540)
# The results (summary.txt, logs, bench JSON) come back in $OUT.
# Usage: scripts/device_build.sh [--no-build]     (from anywhere; --no-build only re-gathers)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
specdec_deps "${specdec_build_packages[@]}"

build=build/device
bundle=build/device-bundle
limit_mib=64

if [[ "${1:-}" != "--no-build" ]]; then
  cmake --preset device >/dev/null
  mapfile -t targets < <(cmake --build "$build" --target help | sed -n 's/^\(specdec\.\(test\|bench\)\.cuda\.[A-Za-z0-9_.]*\):.*/\1/p' | sort -u)
  [[ ${#targets[@]} -gt 0 ]] || { echo "device_build: no specdec.test.cuda.* target" >&2; exit 1; }
  echo "device_build: building ${targets[*]}"
  cmake --build "$build" --target "${targets[@]}"
fi

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib/fallback"
mapfile -t bins < <(find "$build/tests" "$build/bench" -maxdepth 2 -type f -perm -u+x \
  \( -name 'specdec.test.cuda.*' -o -name 'specdec.bench.cuda.*' \) | sort)
[[ ${#bins[@]} -gt 0 ]] || { echo "device_build: nothing built in $build" >&2; exit 1; }
for b in "${bins[@]}"; do
  cp "$b" "$bundle/bin/"
  strip --strip-debug "$bundle/bin/$(basename "$b")" 2>/dev/null || true
done
# Shared libraries: everything ldd resolves except the C runtime, the loader and the driver.
for b in "${bins[@]}"; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
  libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | ld-linux* | libcuda.so.*) ;;
  # The C++ runtime of this machine needs glibc 2.36; run.sh uses the device machine's own when it
  # loads our binaries and falls back to these otherwise.
  libstdc++.so.* | libgcc_s.so.*) cp -L "$lib" "$bundle/lib/fallback/" ;;
  *) cp -L "$lib" "$bundle/lib/" ;;
  esac
done
cp scripts/device_run.sh "$bundle/run.sh"
chmod +x "$bundle/run.sh"
git rev-parse --short HEAD >"$bundle/commit.txt" 2>/dev/null || echo unknown >"$bundle/commit.txt"

size_kib=$(du -sk "$bundle" | cut -f1)
echo "device_build: $bundle holds ${#bins[@]} binaries and $(find "$bundle/lib" -type f | wc -l) libraries," \
     "$((size_kib / 1024)) MiB"
ls -la "$bundle/bin" "$bundle/lib" "$bundle/lib/fallback"
if ((size_kib > limit_mib * 1024)); then
  echo "device_build: the bundle is over ${limit_mib} MiB; the device tool cannot carry it" >&2
  exit 1
fi

echo "device_build: running the bundle here (no GPU: tests must skip, benches must skip)"
DEVICE_RUN_EXPECT_NO_GPU=1 "$bundle/run.sh" "$build/device-bundle-selftest"
