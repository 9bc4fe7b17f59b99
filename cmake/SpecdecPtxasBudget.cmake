# SPDX-License-Identifier: Apache-2.0
#
# Resource budget of the hot CUDA kernels, checked without a device (issue 17, item 6). Two modes:
#
# include() from tests/CMakeLists.txt (CUDA builds only): registers the CTest test
# specdec.test.cuda.ptxas_budget (labels cuda;ptxas; not gpu: it needs nvcc, not a device, so it
# runs in the default Release CI build), which runs this file as a script.
#
# cmake -P (the test): scripts/ptxas_report.sh compiles tests/cuda/ptxas_hot_kernels.cu (every hot
# kernel, instantiated through its public entry point) for sm_90a only with `nvcc --cubin -Xptxas
# -v` (device code only: about 2 minutes on one core) and reports per kernel its registers, its
# cumulative stack (own frame plus its deepest non-inlined callee's) and its spill stores and
# loads (plus those of its non-inlined callees). The test fails when a kernel exceeds its limits
# below, when a kernel of ours has no limits (a new kernel must get some), or when a listed kernel
# is missing (renamed or no longer instantiated). ptxas's figures are deterministic for a given
# toolkit; CUB's own kernels are not checked.
#   -DNVCC=<nvcc> -DSOURCE_ROOT=<repo> [-DCCBIN=<host compiler>] [-DBASH=<bash>]
#   [-DPTXAS_LOG=<file>]  check a kept raw ptxas log instead of compiling (to try limits quickly)
#
# The limits: what ptxas 13.0 gives for sm_90a, registers with a margin of about 8 (another
# toolkit may allocate a few more), stack and spills exactly where they are 0, else with a
# margin of about 10 %. Where they are not 0 the cause lies in shared code outside cuda/ (see
# each entry); lower the limit when that cause goes, never raise one without the reason here.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  include_guard(GLOBAL)
  find_program(SPECDEC_BASH bash)
  if(NOT SPECDEC_BASH)
    message(STATUS "specdec: no bash, specdec.test.cuda.ptxas_budget not registered")
    return()
  endif()
  set(_specdec_ccbin "")
  if(CMAKE_CUDA_HOST_COMPILER)
    set(_specdec_ccbin "-DCCBIN=${CMAKE_CUDA_HOST_COMPILER}")
  endif()
  add_test(NAME specdec.test.cuda.ptxas_budget
    COMMAND "${CMAKE_COMMAND}"
      "-DNVCC=${CMAKE_CUDA_COMPILER}"
      "-DSOURCE_ROOT=${PROJECT_SOURCE_DIR}"
      "-DBASH=${SPECDEC_BASH}"
      ${_specdec_ccbin}
      -P "${CMAKE_CURRENT_LIST_FILE}")
  set_tests_properties(specdec.test.cuda.ptxas_budget PROPERTIES LABELS "cuda;ptxas" TIMEOUT 900)
  return()
endif()

# name|max registers|max stack bytes|max spill bytes (stores, and loads, each)
set(budget
  # Streaming kernels without the shared sampling rule: no stack, no spills.
  "tree_mask_kernel<256>|32|0|0"
  "kv_compact_kernel<256, unsigned short, detail::contiguous_slots>|56|0|0"
  "kv_compact_kernel<256, unsigned short, detail::paged_slots>|64|0|0"
  "prefix_candidates_kernel<256>|40|0|0"
  "prefix_tile_sum_kernel<256, 8>|24|0|0"
  "prefix_tile_offsets_kernel<256, 8>|56|0|0"
  "prefix_theta_kernel<256, 8>|64|0|0"
  "prefix_admission_kernel<256>|24|0|0"
  "prefix_lengths_kernel<256>|24|0|0"
  # Row preparation and the rules: every one of them runs sampling's shared row code
  # (sampling/distribution.hpp). Radix select reads the bins where the executor keeps them (the
  # block executor's shared memory, through radix_histogram's visitor: no per-thread float[256]),
  # truncate() takes its readers by value and returns {cut, mass}, prepare_row_with has one call
  # site of the row code (its log-form retry is a loop), and block_executor::for_each_owned reads
  # whole groups into an array indexed by constants (the partial group element by element). That
  # took the 1024-byte histogram copy out of every kernel that truncates (stack 1392 -> 120 in
  # prepare_rows_kernel, 1328 -> 0 in markov_head, 32 -> 0 in scan_slices and greedy) at the
  # price of registers (48 -> 64 there, 80 -> 126 in block verification, 120 -> 128 in
  # markov_head, 32 -> 38 in greedy: values and bins now stay in registers or shared memory).
  # What stack and spills remain: prepare_rows_kernel, prepare_tree_rows_kernel<bfloat16> and
  # the chain rules keep call frames (and some spills) around truncate(), which NVVM still
  # compiles as a real call; verify_chain<rejection_sampling> settles at 80 registers with
  # spills (stack 1408 -> 240, spills 0 -> 158/244: inlining truncate() there, or calling the
  # histogram as a real function, gave more). verify_tree_kernel: rejection_tree
  # (verify/tree.hpp) keeps its sibling state (draft_dist q[max_siblings], float
  # mass[max_siblings + 1], indexed at run time) in the executor's scratch (scratch_executor in
  # core/executor.hpp: 1224 bytes of the block executor's shared memory, one copy per CTA,
  # written by thread 0 between two barriers) instead of per thread: 255 -> 128 registers,
  # stack 1584 -> 304, spills 236/472 -> 136/284 (f32; bf16 1568 -> 296, 216/432 -> 132/272),
  # shared memory 3296 -> 4528 bytes. Its executor is now its own type (block_executor<256,
  # 1224>), so verify_chain<block_verification, bf16> no longer shares the non-inlined
  # prepare_row / draw_from instances with it and inlines them: stack 328 -> 264 (calls 4 -> 2,
  # registers 126 -> 128).
  # What remains there (not investigated further) looks like the chain rules' pattern: a frame
  # around the non-inlined truncate() call, and spills at 128 registers.
  "scan_slices_kernel<256, float, float>|48|0|0"
  "scan_slices_kernel<256, bfloat16, bfloat16>|48|0|0"
  "verify_chain_kernel<256, verify::greedy, float, float>|46|0|0"
  "prepare_rows_kernel<256, float, float>|72|136|0"
  "prepare_rows_kernel<256, bfloat16, bfloat16>|72|136|0"
  "prepare_tree_rows_kernel<256, float, float>|56|0|0"
  "prepare_tree_rows_kernel<256, bfloat16, bfloat16>|48|36|44"
  "verify_chain_kernel<256, verify::rejection_sampling, float, float>|88|264|268"
  "verify_chain_kernel<256, verify::block_verification, bfloat16, bfloat16>|136|292|0"
  "verify_tree_kernel<256, verify::rejection_sampling, float, float>|136|336|312"
  "verify_tree_kernel<256, verify::rejection_sampling, bfloat16, bfloat16>|136|336|312"
  "markov_head_kernel<256, float>|136|0|0"
  "markov_head_kernel<256, bfloat16>|136|0|0"
)

if(NOT DEFINED BASH)
  set(BASH bash)
endif()
set(cmd "${BASH}" "${SOURCE_ROOT}/scripts/ptxas_report.sh" --tsv)
if(DEFINED PTXAS_LOG)
  list(APPEND cmd --from-log "${PTXAS_LOG}")
else()
  list(APPEND cmd --nvcc "${NVCC}" --arch sm_90a)
  if(DEFINED CCBIN AND NOT CCBIN STREQUAL "")
    list(APPEND cmd --ccbin "${CCBIN}")
  endif()
endif()
execute_process(COMMAND ${cmd} OUTPUT_VARIABLE report ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ptxas_report.sh failed (${rc}):\n${err}")
endif()

# One entry per kernel of ours: name -> "regs|stack|spill stores|spill loads".
string(REPLACE "\n" ";" lines "${report}")
set(seen "")
set(failed 0)
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^kernel\t([^\t]+)\t([0-9]+)\t([0-9]+)\t([0-9]+)\t([0-9]+)\t([0-9]+)$")
    continue()
  endif()
  set(name "${CMAKE_MATCH_1}")
  set(regs "${CMAKE_MATCH_2}")
  set(stack "${CMAKE_MATCH_3}")
  set(st "${CMAKE_MATCH_4}")
  set(ld "${CMAKE_MATCH_5}")
  if(name MATCHES "^cub::")
    continue()
  endif()
  set(found "")
  foreach(entry IN LISTS budget)
    if(entry MATCHES "^([^|]+)\\|([0-9]+)\\|([0-9]+)\\|([0-9]+)$" AND CMAKE_MATCH_1 STREQUAL name)
      set(found "${CMAKE_MATCH_2};${CMAKE_MATCH_3};${CMAKE_MATCH_4}")
      break()
    endif()
  endforeach()
  set(figures "regs ${regs}, stack ${stack}, spills ${st}/${ld}")
  if(found STREQUAL "")
    message(SEND_ERROR "${name} (${figures}): no limits in ${CMAKE_CURRENT_LIST_FILE}")
    set(failed 1)
    continue()
  endif()
  list(APPEND seen "${name}")
  list(GET found 0 max_regs)
  list(GET found 1 max_stack)
  list(GET found 2 max_spill)
  set(over "")
  if(regs GREATER max_regs)
    string(APPEND over " registers ${regs} > ${max_regs};")
  endif()
  if(stack GREATER max_stack)
    string(APPEND over " stack ${stack} > ${max_stack};")
  endif()
  if(st GREATER max_spill OR ld GREATER max_spill)
    string(APPEND over " spills ${st}/${ld} > ${max_spill};")
  endif()
  if(over STREQUAL "")
    message(STATUS "ok    ${name}: ${figures} (limits ${max_regs}, ${max_stack}, ${max_spill})")
  else()
    message(SEND_ERROR "OVER  ${name}:${over} (${figures})")
    set(failed 1)
  endif()
endforeach()
foreach(entry IN LISTS budget)
  string(REGEX REPLACE "\\|.*$" "" name "${entry}")
  list(FIND seen "${name}" at)
  if(at LESS 0)
    message(SEND_ERROR "${name}: listed here but not in ptxas's report (renamed? not instantiated?)")
    set(failed 1)
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "CUDA kernels over their resource budget (scripts/ptxas_report.sh shows all)")
endif()
