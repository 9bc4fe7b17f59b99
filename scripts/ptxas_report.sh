#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Per-kernel resource report of the CUDA backend, from ptxas itself (no device needed): compiles
# one TU (default tests/cuda/ptxas_hot_kernels.cu, which instantiates every hot kernel through its
# public entry point) for one architecture with `nvcc --cubin -Xptxas -v` (device code only, no
# host compile, no link) and prints, for every __global__ function, registers, stack frame and
# spill stores / loads, then every device function ptxas compiled as a real call (not inlined)
# with its own stack frame and spills.
#
# Usage: scripts/ptxas_report.sh [options] [-- extra nvcc flags]
#   --nvcc PATH     nvcc to use (default: $CUDACXX, else nvcc on PATH)
#   --ccbin PATH    host compiler for nvcc's preprocessing (default: nvcc's own choice)
#   --arch ARCH     real architecture (default sm_90a)
#   --source FILE   the TU (default tests/cuda/ptxas_hot_kernels.cu)
#   --log FILE      also keep ptxas's raw output there
#   --from-log FILE parse FILE (a kept raw log) instead of compiling
#   --tsv           machine-readable output: kind<TAB>name<TAB>regs<TAB>stack<TAB>spill
#                   stores<TAB>spill loads<TAB>calls, kind 'kernel' or 'func' (regs -1 and
#                   calls 0 for functions); read by cmake/SpecdecPtxasBudget.cmake
# Names are demangled (c++filt, from binutils: required) and shortened: the ABI namespaces
# (specdec::v0_1::, specdec::v0_1_sm_<archs>::), cuda::kernels::, the return type and the
# parameter list are dropped. CUB's own kernels (cub::) are listed with --tsv only.
# Exit status: nvcc's when the compile fails (its output goes to stderr), else 0.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

nvcc="${CUDACXX:-nvcc}"
ccbin=""
arch="sm_90a"
source="${root}/tests/cuda/ptxas_hot_kernels.cu"
log=""
from_log=""
tsv=0
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nvcc) nvcc="$2"; shift 2 ;;
    --ccbin) ccbin="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --source) source="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --from-log) from_log="$2"; shift 2 ;;
    --tsv) tsv=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '3,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "ptxas_report.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ! command -v c++filt >/dev/null 2>&1; then
  echo "ptxas_report.sh: c++filt (binutils) is required to demangle kernel names" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
raw="${tmp}/ptxas.txt"
if [[ -n "${from_log}" ]]; then
  cp "${from_log}" "${raw}"
else
  # The flags of the Release build (-O3 -DNDEBUG, C++20), fixed here so that the report does not
  # depend on the build type it runs in.
  cmd=("${nvcc}" -std=c++20 -O3 -DNDEBUG "-arch=${arch}" --cubin -Xptxas -v
       -I "${root}/include" "${source}" -o "${tmp}/out.cubin")
  [[ -n "${ccbin}" ]] && cmd+=(-ccbin "${ccbin}")
  cmd+=("${extra[@]}")
  if ! "${cmd[@]}" >"${raw}" 2>&1; then
    cat "${raw}" >&2
    echo "ptxas_report.sh: compile failed: ${cmd[*]}" >&2
    exit 1
  fi
fi
[[ -n "${log}" ]] && cp "${raw}" "${log}"

# ptxas -v prints, per entry function:
#   Compiling entry function 'K' for 'sm_90a'
#   Function properties for K
#       S bytes stack frame, W bytes spill stores, R bytes spill loads
#   Used N registers, used 1 barriers, C bytes cumulative stack size, ...
# then "Function properties for F" (same second line, no "Used") for every function K calls
# that ptxas compiled as a real call (not inlined). A kernel's figures here are: its registers,
# its cumulative stack (its frame plus its deepest callee's), and its spills plus its callees'.
# Functions are also listed on their own (largest figures over the kernels calling them).
awk '
  /Compiling entry function/ {
    match($0, /function \x27[^\x27]*\x27/); entry = substr($0, RSTART + 10, RLENGTH - 11)
    kc[entry] = 0; next
  }
  /Function properties for/ { sub(/.*Function properties for /, ""); current = $0; next }
  /bytes stack frame/ {
    stack = $1; st = $5; ld = $9
    if (current == entry) { ks[entry] = stack; kst[entry] = st; kld[entry] = ld }
    else {
      kst[entry] += st; kld[entry] += ld; ++kc[entry]
      if (!(current in fs) || stack > fs[current]) fs[current] = stack
      if (!(current in fst) || st > fst[current]) fst[current] = st
      if (!(current in fld) || ld > fld[current]) fld[current] = ld
    }
    next
  }
  /Used [0-9]+ registers/ {
    match($0, /Used [0-9]+ registers/); kr[entry] = substr($0, RSTART + 5, RLENGTH - 15) + 0
    if (match($0, /[0-9]+ bytes cumulative stack size/))
      ks[entry] = substr($0, RSTART, RLENGTH) + 0
    next
  }
  END {
    for (k in kr) printf "kernel\t%s\t%d\t%d\t%d\t%d\t%d\n", k, kr[k], ks[k], kst[k], kld[k], kc[k]
    for (f in fs) printf "func\t%s\t-1\t%d\t%d\t%d\t0\n", f, fs[f], fst[f], fld[f]
  }' "${raw}" >"${tmp}/mangled.tsv"

# Demangle, then shorten each name: the part before the first "(" at template depth 0, and after
# the last space at depth 0 (the return type).
c++filt <"${tmp}/mangled.tsv" |
  sed -E 's/specdec::v0_1(_sm_[0-9a-z_]*)?:://g; s/cuda::kernels:://g' |
  awk -F '\t' -v OFS='\t' '
    function shorten(s,    i, c, d, cut, start) {
      d = 0; cut = length(s) + 1; start = 1
      for (i = 1; i <= length(s); ++i) {
        c = substr(s, i, 1)
        if (c == "<") ++d
        else if (c == ">") --d
        else if (c == "(" && d == 0) { cut = i; break }
        else if (c == " " && d == 0) start = i + 1
      }
      return substr(s, start, cut - start)
    }
    { $2 = shorten($2); print }' |
  LC_ALL=C sort -t $'\t' -k1,1r -k2,2 >"${tmp}/report.tsv"

if [[ "${tsv}" == 1 ]]; then
  cat "${tmp}/report.tsv"
  exit 0
fi
echo "ptxas report: ${arch}, $(basename "${source}")"
awk -F '\t' '
  $1 == "kernel" && $2 !~ /^cub::/ {
    if (!k++) printf "%-76s %5s %6s %8s %8s %5s\n", "kernel", "regs", "stack", "spill.st", "spill.ld", "calls"
    printf "%-76s %5d %6d %8d %8d %5d\n", $2, $3, $4, $5, $6, $7
  }
  $1 == "func" && $2 !~ /^cub::/ {
    if (!f++) printf "\nnot inlined (real calls): stack, spill.st, spill.ld, function\n"
    printf "%6d %8d %8d  %s\n", $4, $5, $6, $2
  }' "${tmp}/report.tsv"
