# SPDX-License-Identifier: Apache-2.0
#
# Results must not depend on the consumer's compiler flags (issue 12). Two modes:
#
# include() from tests/CMakeLists.txt: builds tests/portability/flags_probe.cpp once per flag set
# below (specdec.test.portability.flags_probe.<name>) and registers the CTest test
# specdec.test.portability.flags (labels cpu;portability), which runs this file as a script.
#
# cmake -P (the test): runs every variant, requires each to print exactly what the reference
# (-ffp-contract=off, baseline ISA) prints. Variants for x86-64-v3 (AVX2 + FMA: the instruction set
# where contraction can change results) are skipped, and the skip printed, on a CPU without them.
#   -DPROBES=<name>=<exe>,...  the first entry is the reference
#   -DNEEDS_V3=<name>,...      variants that need AVX2 and FMA to run
if(CMAKE_SCRIPT_MODE_FILE)
  cmake_policy(SET CMP0057 NEW) # IN_LIST
  string(REPLACE "," ";" PROBES "${PROBES}")
  string(REPLACE "," ";" NEEDS_V3 "${NEEDS_V3}")
  set(ref_name "")
  set(ref_out "")
  set(failed 0)
  set(cpu_v3 OFF)
  if(EXISTS /proc/cpuinfo)
    file(STRINGS /proc/cpuinfo flags_line REGEX "^flags" LIMIT_COUNT 1)
    if(flags_line MATCHES " avx2( |$)" AND flags_line MATCHES " fma( |$)")
      set(cpu_v3 ON)
    endif()
  endif()
  foreach(entry IN LISTS PROBES)
    string(REGEX REPLACE "=.*$" "" name "${entry}")
    string(REGEX REPLACE "^[^=]*=" "" exe "${entry}")
    if(name IN_LIST NEEDS_V3 AND NOT cpu_v3)
      message(STATUS "SKIPPED ${name}: this CPU lacks AVX2/FMA")
      continue()
    endif()
    execute_process(COMMAND "${exe}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(SEND_ERROR "${name}: exit code ${rc}")
      set(failed 1)
      continue()
    endif()
    if(ref_name STREQUAL "")
      set(ref_name "${name}")
      set(ref_out "${out}")
      message(STATUS "reference (${name}):\n${out}")
    elseif(out STREQUAL ref_out)
      message(STATUS "${name}: same bits as ${ref_name}")
    else()
      message(SEND_ERROR "${name} differs from ${ref_name}:\n${out}")
      set(failed 1)
    endif()
  endforeach()
  if(failed)
    message(FATAL_ERROR "results depend on the compiler flags")
  endif()
  return()
endif()

include_guard(GLOBAL)
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  return() # the flag sets below are g++/clang++ spellings
endif()

# "name|flags" (flags space-separated). The reference comes first. -O3 -march=x86-64-v3 -ffp-contract=fast is g++'s
# default contraction with FMA available (what a consumer's -march=native gives on this kind of
# machine); clang's default is -ffp-contract=on.
set(_specdec_probe_sets
  "ref|-O2 -ffp-contract=off"
  "default|-O3"
  "notrap|-O3 -ffp-contract=fast -fno-trapping-math")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  list(APPEND _specdec_probe_sets
    "fma_fast|-O3 -march=x86-64-v3 -ffp-contract=fast"
    "fma_on_notrap|-O2 -march=x86-64-v3 -ffp-contract=on -fno-trapping-math")
endif()
set(_specdec_probe_list "")
set(_specdec_probe_v3 "")
foreach(set_ IN LISTS _specdec_probe_sets)
  string(REGEX REPLACE "\\|.*$" "" name "${set_}")
  string(REGEX REPLACE "^[^|]*\\|" "" flag_string "${set_}")
  separate_arguments(flags UNIX_COMMAND "${flag_string}")
  set(target "specdec.test.portability.flags_probe.${name}")
  add_executable(${target} "${PROJECT_SOURCE_DIR}/tests/portability/flags_probe.cpp")
  target_link_libraries(${target} PRIVATE specdec::specdec specdec_dev_flags)
  # Target options come after CMAKE_CXX_FLAGS_<CONFIG>: these flags win.
  target_compile_options(${target} PRIVATE ${flags})
  list(APPEND _specdec_probe_list "${name}=$<TARGET_FILE:${target}>")
  if(flags MATCHES "x86-64-v3")
    list(APPEND _specdec_probe_v3 "${name}")
  endif()
endforeach()
list(JOIN _specdec_probe_list "," _specdec_probe_list)
list(JOIN _specdec_probe_v3 "," _specdec_probe_v3)
add_test(NAME specdec.test.portability.flags
  COMMAND "${CMAKE_COMMAND}" "-DPROBES=${_specdec_probe_list}" "-DNEEDS_V3=${_specdec_probe_v3}"
          -P "${CMAKE_CURRENT_LIST_FILE}")
set_tests_properties(specdec.test.portability.flags PROPERTIES LABELS "cpu;portability")
unset(_specdec_probe_sets)
unset(_specdec_probe_list)
unset(_specdec_probe_v3)
