# SPDX-License-Identifier: Apache-2.0
#
# Fuzz targets: every tests/fuzz/fuzz_<name>.cpp (it defines LLVMFuzzerTestOneInput and
# specdec_fuzz::seeds(); see tests/fuzz/README.md). Included by tests/CMakeLists.txt.
#
# Every build (any compiler):
#   specdec.fuzz.<name>.replay   the target + tests/fuzz/replay_main.cpp: replays files and folders
#                                given on the command line (no libFuzzer needed); CTest test of the
#                                same name over tests/fuzz/corpus/<name> (label cpu), so the seeds
#                                and regression inputs run under g++ -Werror Release too.
# With SPECDEC_BUILD_FUZZ=ON and clang (the asan preset):
#   specdec.fuzz.<name>          the libFuzzer binary (-fsanitize=fuzzer,address,undefined
#                                -fno-sanitize-recover=all); CTest test of the same name (label
#                                fuzz) that fuzzes for SPECDEC_FUZZ_SECONDS with -seed=1 into a
#                                fresh scratch corpus <build>/fuzz/<name>/corpus, starting from
#                                the seeds (the repository's corpus is only read). Any finding (crash, sanitizer
#                                report, timeout, out-of-memory, leak, failed property) fails it;
#                                the input is left in <build>/fuzz/<name>/artifacts/.
#                                The replay driver then links the same instrumented object.
# SPECDEC_FUZZ_SKIP / SPECDEC_FUZZ_VERBOSE / SPECDEC_FUZZ_MALLOC_LIMIT_MB: tests/fuzz/README.md.
#
# Script mode (the command of the fuzz tests):
#   cmake -DFUZZER=<exe> -DWORK=<dir> -DCORPUS=<dir> "-DARGS=<libFuzzer options>" -P SpecdecFuzz.cmake
if(CMAKE_SCRIPT_MODE_FILE)
  file(REMOVE_RECURSE "${WORK}")
  file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
  separate_arguments(_args UNIX_COMMAND "${ARGS}")
  execute_process(
    COMMAND "${FUZZER}" ${_args} "-artifact_prefix=${WORK}/artifacts/" "${WORK}/corpus"
            "${CORPUS}"
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    file(GLOB _found "${WORK}/artifacts/*")
    message(FATAL_ERROR "${FUZZER} failed (exit ${_rc}); input: ${_found}\n"
                        "Reproduce: ${FUZZER} <input>; keep it as a regression seed in ${CORPUS}")
  endif()
  return()
endif()

include_guard(GLOBAL)

option(SPECDEC_BUILD_FUZZ "Build the libFuzzer targets specdec.fuzz.<name> and their CTest runs (clang only)" OFF)
set(SPECDEC_FUZZ_SECONDS 12 CACHE STRING "Seconds each CTest fuzz run (specdec.fuzz.<name>) lasts")

set(_specdec_fuzz_dir "${PROJECT_SOURCE_DIR}/tests/fuzz")
file(GLOB _specdec_fuzz_sources CONFIGURE_DEPENDS "${_specdec_fuzz_dir}/fuzz_*.cpp")
list(SORT _specdec_fuzz_sources)

set(_specdec_libfuzzer OFF)
if(SPECDEC_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(WARNING "specdec: SPECDEC_BUILD_FUZZ=ON needs clang's libFuzzer; with "
                    "${CMAKE_CXX_COMPILER_ID} only the replay drivers are built")
  else()
    include(CheckCXXSourceCompiles)
    set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
    set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=fuzzer")
    check_cxx_source_compiles(
      "#include <cstddef>\n#include <cstdint>\nextern \"C\" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }"
      SPECDEC_HAS_LIBFUZZER)
    unset(CMAKE_REQUIRED_FLAGS)
    unset(CMAKE_REQUIRED_LINK_OPTIONS)
    if(NOT SPECDEC_HAS_LIBFUZZER)
      message(FATAL_ERROR "specdec: SPECDEC_BUILD_FUZZ=ON but ${CMAKE_CXX_COMPILER} cannot link "
                          "-fsanitize=fuzzer. On Debian/Ubuntu: apt-get install libclang-rt-14-dev "
                          "(or set SPECDEC_BUILD_FUZZ=OFF)")
    endif()
    set(_specdec_libfuzzer ON)
    message(STATUS "specdec: libFuzzer targets, ${SPECDEC_FUZZ_SECONDS} s per CTest run")
  endif()
endif()

# Options of every CTest fuzz run, then per target. -timeout: one input; -rss_limit_mb: the whole
# process; -malloc_limit_mb: one allocation (a loader sizing a buffer from a header it has not
# checked against the file fails there).
set(_specdec_fuzz_common_args
    "-seed=1 -max_total_time=${SPECDEC_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1")
set(_specdec_fuzz_args_deepspec "-malloc_limit_mb=64")
set(_specdec_fuzz_args_heads "-malloc_limit_mb=64")
set(_specdec_fuzz_args_llama2c "-malloc_limit_mb=1024")
set(_specdec_fuzz_args_safetensors "-malloc_limit_mb=64")

if(_specdec_fuzz_sources)
  add_library(specdec.fuzz.replay_main OBJECT "${_specdec_fuzz_dir}/replay_main.cpp")
  target_link_libraries(specdec.fuzz.replay_main PRIVATE specdec_dev_flags)
  target_include_directories(specdec.fuzz.replay_main PRIVATE "${_specdec_fuzz_dir}")
  target_compile_features(specdec.fuzz.replay_main PRIVATE cxx_std_20)
endif()

# One compilation per target: with libFuzzer the instrumented object is linked twice (libFuzzer's
# main, and the replay driver with the ASan/UBSan runtimes, which define the coverage hooks);
# without it, plain objects for the replay driver only.
foreach(src IN LISTS _specdec_fuzz_sources)
  get_filename_component(stem "${src}" NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name "${stem}")
  set(corpus "${_specdec_fuzz_dir}/corpus/${name}")
  set(libs specdec::specdec specdec_dev_flags)
  if(name STREQUAL "llama2c" OR name STREQUAL "deepspec") # example code under examples/
    list(APPEND libs specdec_llama2c)
  endif()
  set(replay "specdec.fuzz.${name}.replay")
  set(fuzzer "specdec.fuzz.${name}")

  if(_specdec_libfuzzer)
    set(objects "specdec.fuzz.${name}.obj")
    add_library(${objects} OBJECT "${src}")
    target_link_libraries(${objects} PRIVATE ${libs})
    target_include_directories(${objects} PRIVATE "${_specdec_fuzz_dir}")
    target_compile_options(${objects} PRIVATE
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    add_executable(${fuzzer} $<TARGET_OBJECTS:${objects}>)
    target_link_libraries(${fuzzer} PRIVATE ${libs})
    target_link_options(${fuzzer} PRIVATE -fsanitize=fuzzer,address,undefined)
    add_executable(${replay} $<TARGET_OBJECTS:${objects}> $<TARGET_OBJECTS:specdec.fuzz.replay_main>)
    target_link_libraries(${replay} PRIVATE ${libs})
    target_link_options(${replay} PRIVATE -fsanitize=address,undefined)
    add_test(NAME ${fuzzer}
      COMMAND "${CMAKE_COMMAND}"
        "-DFUZZER=$<TARGET_FILE:${fuzzer}>"
        "-DWORK=${PROJECT_BINARY_DIR}/fuzz/${name}"
        "-DCORPUS=${corpus}"
        "-DARGS=${_specdec_fuzz_common_args} ${_specdec_fuzz_args_${name}}"
        -P "${PROJECT_SOURCE_DIR}/cmake/SpecdecFuzz.cmake")
    set_tests_properties(${fuzzer} PROPERTIES LABELS "fuzz" TIMEOUT 300)
  else()
    add_executable(${replay} "${src}" $<TARGET_OBJECTS:specdec.fuzz.replay_main>)
    target_link_libraries(${replay} PRIVATE ${libs})
    target_include_directories(${replay} PRIVATE "${_specdec_fuzz_dir}")
  endif()
  add_test(NAME ${replay} COMMAND ${replay} "${corpus}")
  set_tests_properties(${replay} PROPERTIES LABELS "cpu;fuzz_replay" TIMEOUT 300)
endforeach()
