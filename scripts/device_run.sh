#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Device check, half 2 of 2: runs ON THE LENT GPU MACHINE, from the bundle that
# scripts/device_build.sh gathered (copied into the bundle as run.sh). Builds nothing; needs only
# bash, coreutils and, for step 2, compute-sanitizer from the machine's CUDA toolkit.
#   1. every GPU test binary (bin/specdec.test.cuda.*): exit 0 passed, 77 skipped (no device)
#   2. compute-sanitizer --tool memcheck and --tool racecheck on every GPU test binary, without
#      the 10^6-draw goodness-of-fit cases ([gof]), which take minutes under the sanitizers
#   3. every CUDA bench: a core subset first (its JSON survives a later timeout), then the rest
# Every step has a timeout and the whole run a budget (DEVICE_RUN_BUDGET_S, default 480 s), so one
# call of the device tool (at most 10 minutes) always returns with a summary.
# Usage: run.sh [output dir]   (default: $OUT, the device tool's output folder, else ./device-out)
# Output: summary.txt (one line per step), run.log (everything), bench-<name>[-core].json.
# DEVICE_RUN_EXPECT_NO_GPU=1 (the self-test on a machine without a GPU): tests must skip, benches
# must report "no CUDA device", the sanitizers are not run.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${OUT:-$PWD/device-out}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/run.log"
summary="$out/summary.txt"
: >"$log"
: >"$summary"
start=$SECONDS
budget=${DEVICE_RUN_BUDGET_S:-480}
expect_no_gpu=${DEVICE_RUN_EXPECT_NO_GPU:-0}
status=0
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The machine's own C++ runtime when it is new enough for our binaries, else the bundled one
# (which needs glibc 2.36 or later).
probe=$(find "$here/bin" -maxdepth 1 -type f -name 'specdec.test.cuda.*' | sort | head -n 1)
if [[ -n $probe ]] && ! LD_BIND_NOW=1 "$probe" --help >/dev/null 2>&1; then
  export LD_LIBRARY_PATH="$here/lib/fallback:$LD_LIBRARY_PATH"
  echo "C++ runtime: bundled (lib/fallback)" >>"$log"
else
  echo "C++ runtime: the machine's" >>"$log"
fi

left() { echo $((budget - (SECONDS - start))); }
# step <name> <timeout s> <ok exit codes, comma-separated> <cmd...>
step() {
  local name=$1 limit=$2 oks=$3
  shift 3
  local l
  l=$(left)
  if ((l < 10)); then
    echo "SKIP           $name (time budget spent)" | tee -a "$summary" "$log"
    status=1
    return 1
  fi
  ((limit > l)) && limit=$l
  local t0=$SECONDS rc=0
  printf '\n===== %s (t=%ss)\n' "$name" "$((SECONDS - start))" >>"$log"
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
  local what
  if ((rc == 124 || rc == 137)); then
    what="TIMEOUT(${limit}s)"
  elif [[ ",$oks," == *",$rc,"* ]]; then
    what=$([[ $rc -eq 77 ]] && echo SKIPPED || echo OK)
  else
    what="FAIL(rc=$rc)"
  fi
  printf '%-14s %s [%ss]\n' "$what" "$name" "$((SECONDS - t0))" | tee -a "$summary"
  [[ $what == OK || $what == SKIPPED ]] || status=1
}

{
  echo "bundle: $here (commit $(cat "$here/commit.txt" 2>/dev/null || echo unknown))"
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  echo "cores: $(nproc)"
} >>"$log" 2>&1

mapfile -t tests < <(find "$here/bin" -maxdepth 1 -type f -name 'specdec.test.cuda.*' | sort)
mapfile -t benches < <(find "$here/bin" -maxdepth 1 -type f -name 'specdec.bench.cuda.*' | sort)
if [[ ${#tests[@]} -eq 0 ]]; then
  echo "FAIL           no specdec.test.cuda.* binary in $here/bin" | tee -a "$summary"
  exit 1
fi

# 1. GPU tests. Without a device each binary exits 77 (skipped); with one, 77 is a failure.
test_ok="0"
[[ $expect_no_gpu == 1 ]] && test_ok="77"
for t in "${tests[@]}"; do
  step "test $(basename "$t")" 150 "$test_ok" "$t" || true
done

# 2. compute-sanitizer.
if [[ $expect_no_gpu != 1 ]]; then
  sanitizer=$(command -v compute-sanitizer || true)
  for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [[ -z $sanitizer && -x $c ]] && sanitizer=$c
  done
  if [[ -z $sanitizer ]]; then
    echo "FAIL           compute-sanitizer not found" | tee -a "$summary"
    status=1
  else
    for t in "${tests[@]}"; do
      for tool in memcheck racecheck; do
        step "$tool $(basename "$t")" 60 0 "$sanitizer" --tool "$tool" --error-exitcode 1 "$t" "~[gof]" ||
          true
      done
    done
  fi
fi

# 3. Benches: chain points, tree points, masks and KV compaction, the DSpark sampler and the device
# prefix scheduler first, then the whole grid with what is left of the budget.
core='copy|/batch:(1|64|256)/k:(1|8)/vocab:(32000|151936)/'
core+='|verify_tree/.*/batch:(1|128)/nodes:(8|64)/vocab:32000/|tree_mask|kv_compact'
core+='|dspark_sampler/.*/batch:(1|128)/vocab:32000/|dspark_scheduler/(early_stop|global)/batch:(4096|65536)'
for b in "${benches[@]}"; do
  name="$(basename "$b")"
  json="$out/bench-${name#specdec.bench.}-core.json"
  step "bench $name (core)" 120 0 "$b" --benchmark_filter="$core" --benchmark_out_format=json \
    --benchmark_out="$json" || true
  if [[ $expect_no_gpu == 1 ]] && ! grep -q '"error_message": "no CUDA device"' "$json" 2>/dev/null; then
    echo "FAIL           bench $name did not skip with 'no CUDA device'" | tee -a "$summary"
    status=1
  fi
done
if [[ $expect_no_gpu != 1 ]]; then
  for b in "${benches[@]}"; do
    name="$(basename "$b")"
    step "bench $name" 150 0 "$b" --benchmark_out_format=json \
      --benchmark_out="$out/bench-${name#specdec.bench.}.json" || true
  done
fi

echo "total: $((SECONDS - start)) s, status $status; logs in $out" | tee -a "$summary"
exit $status
