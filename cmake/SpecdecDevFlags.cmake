# SPDX-License-Identifier: Apache-2.0
#
# specdec_dev_flags: a non-exported INTERFACE target with the warnings, -Werror, sanitizers and
# extra-check define that specdec's own tests, examples and benches build with. Users of the
# installed package never see these flags.
#
# Host (CXX):  -Wall -Wextra -Wpedantic -Wshadow -Wconversion [-Werror]
#              [-fsanitize=<SPECDEC_SANITIZE> -fno-sanitize-recover=all -fno-omit-frame-pointer]
# nvcc (CUDA): -Werror all-warnings (nvcc's own diagnostics, e.g. #20013-D host call from HD code),
#              host warnings through -Xcompiler. -Wpedantic is left out there: nvcc's generated
#              host code uses GNU line markers that -Wpedantic rejects. Never --expt-relaxed-constexpr.
include_guard(GLOBAL)

add_library(specdec_dev_flags INTERFACE)

set(_specdec_host_warnings -Wall -Wextra -Wpedantic -Wshadow -Wconversion)
# clang's -Wconversion includes -Wsign-conversion, g++'s (C++) does not: turned off on clang so
# that both compilers accept the same code (signed index_t indexing std::vector is idiomatic here).
target_compile_options(specdec_dev_flags INTERFACE
  "$<$<COMPILE_LANGUAGE:CXX>:${_specdec_host_warnings}>"
  "$<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:Clang>>:-Wno-sign-conversion>"
  "$<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${SPECDEC_WERROR}>>:-Werror>")

if(SPECDEC_HAS_CUDA)
  set(_specdec_xcompiler "-Wall,-Wextra,-Wshadow,-Wconversion")
  if(SPECDEC_WERROR)
    string(APPEND _specdec_xcompiler ",-Werror")
    target_compile_options(specdec_dev_flags INTERFACE
      "$<$<COMPILE_LANGUAGE:CUDA>:SHELL:-Werror all-warnings>")
  endif()
  target_compile_options(specdec_dev_flags INTERFACE
    "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${_specdec_xcompiler}>")
endif()

if(SPECDEC_ENABLE_EXTRA_CHECKS)
  target_compile_definitions(specdec_dev_flags INTERFACE SPECDEC_ENABLE_EXTRA_CHECKS=1)
endif()

# Sanitizers: host code only (nvcc cannot instrument device code; compute-sanitizer covers it).
if(NOT SPECDEC_SANITIZE STREQUAL "")
  list(JOIN SPECDEC_SANITIZE "," _specdec_sanitizers)
  set(_specdec_san_flags "-fsanitize=${_specdec_sanitizers}" -fno-sanitize-recover=all
                         -fno-omit-frame-pointer)
  target_compile_options(specdec_dev_flags INTERFACE
    "$<$<COMPILE_LANGUAGE:CXX>:${_specdec_san_flags}>")
  target_link_options(specdec_dev_flags INTERFACE
    "$<$<LINK_LANGUAGE:CXX>:-fsanitize=${_specdec_sanitizers}>")
  message(STATUS "specdec: sanitizers ${_specdec_sanitizers} (host code)")
endif()

unset(_specdec_host_warnings)
unset(_specdec_xcompiler)
