# SPDX-License-Identifier: Apache-2.0
#
# cmake -P script run after each host test build (tests/CMakeLists.txt, specdec_discover_tests):
# lists the Catch2 cases of TEST_EXECUTABLE and writes CTEST_FILE with one CTest test per case,
# named "<TEST_TARGET>: <case>", labelled TEST_LABELS (comma-separated).
#
# It replaces Catch2 2.13's catch_discover_tests script, which keeps the case names in a CMake list
# and so (1) split names at ';', (2) merged a name holding an unbalanced '[' (e.g. "maps to [0, 1)")
# with the next one, and (3) passed a name starting with '-' as the test spec, which Catch's command
# line took for an option. The resulting tests matched no case and, since Catch exits 0 when no
# case runs, passed without running. Here names never go through a list, every character that
# Catch's test-spec parser treats specially is escaped with '\', and each test runs with
# '--warn NoTests', so a spec that matches nothing fails instead of passing.
foreach(var IN ITEMS TEST_TARGET TEST_EXECUTABLE TEST_WORKING_DIR CTEST_FILE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "SpecdecCatchDiscover.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(
  COMMAND "${TEST_EXECUTABLE}" --list-test-names-only
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  WORKING_DIRECTORY "${TEST_WORKING_DIR}")
# Catch exits with the number of cases listed; anything else (a signal, a sanitizer) is an error.
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "${TEST_EXECUTABLE} --list-test-names-only failed (${rc}):\n${out}\n${err}")
endif()

string(REPLACE "," ";" labels "${TEST_LABELS}") # the LABELS value is a list on purpose
set(script "")
set(count 0)
while(NOT out STREQUAL "")
  string(FIND "${out}" "\n" nl)
  if(nl EQUAL -1)
    set(name "${out}")
    set(out "")
  else()
    string(SUBSTRING "${out}" 0 ${nl} name)
    math(EXPR nl "${nl} + 1")
    string(SUBSTRING "${out}" ${nl} -1 out)
  endif()
  string(REGEX REPLACE "\r$" "" name "${name}")
  if(name STREQUAL "")
    continue()
  endif()
  if(name MATCHES "]==]" OR name MATCHES "^[Ee][Xx][Cc][Ll][Uu][Dd][Ee]:")
    # "exclude:" makes Catch run every other case, escaped or quoted alike.
    message(FATAL_ERROR "${TEST_EXECUTABLE}: rename the Catch2 case '${name}' "
                        "(names may not start with 'exclude:' nor contain ']==]')")
  endif()

  # Catch2 2.13 test spec: '\' escapes the next character; ',' '[' ']' '"' are special anywhere,
  # '*' '~' '-' at the start (wildcard, exclusion, option), '*' at the end.
  set(spec "${name}")
  string(REPLACE "\\" "\\\\" spec "${spec}")
  foreach(special IN ITEMS "," "[" "]" "\"" "*" "~")
    string(REPLACE "${special}" "\\${special}" spec "${spec}")
  endforeach()
  if(spec MATCHES "^-") # else an option
    set(spec "\\${spec}")
  endif()

  set(test "${TEST_TARGET}: ${name}")
  string(APPEND script
    "add_test([==[${test}]==] [==[${TEST_EXECUTABLE}]==] [==[${spec}]==] --warn NoTests)\n"
    "set_tests_properties([==[${test}]==] PROPERTIES\n"
    "  WORKING_DIRECTORY [==[${TEST_WORKING_DIR}]==] LABELS [==[${labels}]==])\n")
  math(EXPR count "${count} + 1")
endwhile()

if(count EQUAL 0)
  message(WARNING "${TEST_EXECUTABLE} has no Catch2 test case")
endif()
file(WRITE "${CTEST_FILE}" "# ${count} Catch2 cases of ${TEST_EXECUTABLE}\n${script}")
