# SPDX-License-Identifier: Apache-2.0
#
# cmake -P script behind each specdec.test.compile_fail.<name> test (STYLE C8, as in Eigen):
# compiles SOURCE with -DSPECDEC_EXPECT_FAIL and passes when the compiler FAILS and its output
# matches the CMake regular expression on the source's '// expected-error: <regex>' line.
# (Without the define the same file must compile: tests/CMakeLists.txt builds it in 'all'.)
#
# Inputs: COMPILER, SOURCE, SOURCE_ROOT (include/ and tests/ below it), DEFINES (optional list).
foreach(var IN ITEMS COMPILER SOURCE SOURCE_ROOT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "SpecdecCompileFail.cmake: -D${var}=... is required")
  endif()
endforeach()

file(STRINGS "${SOURCE}" expect_lines REGEX "//[ \t]*expected-error:")
if(NOT expect_lines)
  message(FATAL_ERROR "${SOURCE}: no '// expected-error: <regex>' line")
endif()
list(GET expect_lines 0 expect_line)
string(REGEX REPLACE "^.*//[ \t]*expected-error:[ \t]*" "" expected "${expect_line}")
string(STRIP "${expected}" expected)
if(expected STREQUAL "")
  message(FATAL_ERROR "${SOURCE}: the expected-error regex is empty")
endif()

set(define_args "")
foreach(d IN LISTS DEFINES)
  if(NOT d STREQUAL "")
    list(APPEND define_args "-D${d}")
  endif()
endforeach()

# ASCII quotes in diagnostics (g++ prints typographic quotes under a UTF-8 locale).
set(ENV{LC_ALL} C)
set(cmd "${COMPILER}" -std=c++20 -fsyntax-only -DSPECDEC_EXPECT_FAIL ${define_args}
        "-I${SOURCE_ROOT}/include" "-I${SOURCE_ROOT}/tests" "${SOURCE}")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)

list(JOIN cmd " " cmd_str)
if(rc EQUAL 0)
  message(FATAL_ERROR "compiled, but it must not:\n  ${cmd_str}\n"
                      "expected an error matching: ${expected}\n${out}")
endif()
if(NOT out MATCHES "${expected}")
  message(FATAL_ERROR "failed to compile as expected, but no diagnostic matches '${expected}':\n"
                      "  ${cmd_str}\n${out}")
endif()
message(STATUS "failed to compile as expected (matched '${expected}')")
