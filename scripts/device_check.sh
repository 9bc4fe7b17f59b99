#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# GPU checks for a machine with one CUDA device (STYLE C14.4); not part of .ci/run, whose hosts
# have no GPU. Keeps the whole run under 8 minutes (every step has a timeout; a step that runs out
# of time is logged as such and the script moves on).
#   1. configure (preset 'device': CUDA required, sm_90a only, no header TUs) in build/device
#   2. build the GPU tests and CUDA benches (and everything else, for completeness)
#   3. ctest -L gpu
#   4. compute-sanitizer --tool memcheck and --tool racecheck on every GPU test binary
#   5. every bench/cuda binary, --benchmark_format=json, into the output directory
# Usage: scripts/device_check.sh <output dir>      (run from the repository root)
# Output: <out>/device_check.log (everything), <out>/summary.txt (one line per step),
#         <out>/ctest.log, <out>/bench-<name>.json (sanitizer reports are in device_check.log)
set -uo pipefail

out="${1:?usage: scripts/device_check.sh <output dir>}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/device_check.log"
summary="$out/summary.txt"
: >"$log"
: >"$summary"
build=build/device
start=$SECONDS
budget=${DEVICE_CHECK_BUDGET_S:-470} # < 8 min in all
status=0

export PATH="/usr/local/cuda/bin:$PATH"
jobs=$(nproc)

section() { printf '\n===== %s (t=%ss) =====\n' "$1" "$((SECONDS - start))" | tee -a "$log"; }
left() { echo $((budget - (SECONDS - start))); }
# step <name> <timeout s> <cmd...>: runs cmd with a timeout, logs output, records the outcome.
step() {
  local name=$1 limit=$2
  shift 2
  local l
  l=$(left)
  if ((l < 10)); then
    echo "SKIP           $name (time budget spent)" | tee -a "$summary" "$log"
    status=1
    return 1
  fi
  ((limit > l)) && limit=$l
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
  local what=OK
  if ((rc == 124 || rc == 137)); then
    what="TIMEOUT(${limit}s)"
  elif ((rc != 0)); then
    what="FAIL(rc=$rc)"
  fi
  printf '%-14s %s [%ss]\n' "$what" "$name" "$((SECONDS - t0))" | tee -a "$summary" "$log"
  [[ $what == OK ]] || status=1
  [[ $what == OK ]]
}

section "machine"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  nvcc --version | tail -n 2
  cmake --version | head -n 1
  echo "cores: $jobs"
} >>"$log" 2>&1
command -v nvcc >/dev/null || { echo "FAIL           nvcc not found" | tee -a "$summary"; exit 1; }

section "configure"
step configure 120 cmake --preset device || { cat "$summary"; exit 1; }

section "build"
step build 240 cmake --build "$build" -j "$jobs" || { cat "$summary"; exit 1; }

section "ctest -L gpu"
step "ctest -L gpu" 120 ctest --test-dir "$build" -L gpu --output-on-failure -j 1 \
  --output-log "$out/ctest.log"

section "compute-sanitizer"
sanitizer=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [[ -z $sanitizer && -x $c ]] && sanitizer=$c
done
mapfile -t gpu_tests < <(find "$build/tests" -maxdepth 2 -type f -perm -u+x -name 'specdec.test.cuda.*' | sort)
if [[ -z $sanitizer ]]; then
  echo "FAIL           compute-sanitizer not found" | tee -a "$summary" "$log"
  status=1
else
  for t in "${gpu_tests[@]}"; do
    for tool in memcheck racecheck; do
      name="$(basename "$t")"
      # The 1e6-draw goodness-of-fit cases ([gof]) are left out: under the sanitizers they take
      # minutes, and the other cases run the same kernels.
      step "$tool $name" 60 "$sanitizer" --tool "$tool" --error-exitcode 1 "$t" "~[gof]" || true
    done
  done
fi

section "benches (bench/cuda)"
mapfile -t benches < <(find "$build/bench" -type f -perm -u+x -name 'specdec.bench.cuda.*' 2>/dev/null | sort)
[[ ${#benches[@]} -eq 0 ]] && echo "NOTE           no bench/cuda binary" | tee -a "$summary" "$log"
# A core subset first (its JSON survives even if the full grid later runs out of time), then the
# whole grid with what is left of the budget. The patterns: chain points (verify_chain), tree
# points, masks and KV compaction (verify_tree), the DSpark Markov-head sampler and the device
# prefix scheduler (dspark); their tests run in ctest -L gpu and under the sanitizers like every
# specdec.test.cuda.* binary.
core='copy|/batch:(1|64|256)/k:(1|8)/vocab:(32000|151936)/'
core+='|verify_tree/.*/batch:(1|128)/nodes:(8|64)/vocab:32000/|tree_mask|kv_compact'
core+='|dspark_sampler/.*/batch:(1|128)/vocab:32000/|dspark_scheduler/(early_stop|global)/batch:(4096|65536)'
for b in "${benches[@]}"; do
  name="$(basename "$b")"
  step "bench $name (core)" 120 "$b" --benchmark_filter="$core" --benchmark_format=json \
    --benchmark_out_format=json --benchmark_out="$out/bench-${name#specdec.bench.}-core.json" || true
done
for b in "${benches[@]}"; do
  name="$(basename "$b")"
  step "bench $name" 150 "$b" --benchmark_format=json --benchmark_out_format=json \
    --benchmark_out="$out/bench-${name#specdec.bench.}.json" || true
done

section "summary"
cat "$summary" | tee -a "$log"
echo "total: $((SECONDS - start)) s; logs in $out" | tee -a "$log"
exit $status
