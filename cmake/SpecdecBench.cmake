# SPDX-License-Identifier: Apache-2.0
#
# specdec_add_bench(<name> <src>...)
#   Adds the Google Benchmark executable specdec.bench.<name> (name is "<layer>.<thing>", e.g.
#   "cpu.verify_chain"), built with -O3 -DNDEBUG whatever the build type (+ -march=native and
#   -Wno-error when SPECDEC_BENCH_NATIVE), linked to benchmark::benchmark_main. A .cu source links specdec::cuda
#   and is compiled for SPECDEC_BENCH_CUDA_ARCHITECTURES (default: the last of
#   CMAKE_CUDA_ARCHITECTURES, 90a by default: a bench runs on one GPU, and each extra architecture
#   costs about a minute of CI per .cu). On an A100: -DSPECDEC_BENCH_CUDA_ARCHITECTURES=80.
include_guard(GLOBAL)

if(SPECDEC_HAS_CUDA AND NOT SPECDEC_BENCH_CUDA_ARCHITECTURES)
  list(GET CMAKE_CUDA_ARCHITECTURES -1 _specdec_bench_default_arch)
  set(SPECDEC_BENCH_CUDA_ARCHITECTURES "${_specdec_bench_default_arch}" CACHE STRING
      "CUDA architectures of the .cu benchmarks (default: the last of CMAKE_CUDA_ARCHITECTURES)")
endif()

find_package(benchmark 1.7 CONFIG QUIET)
if(NOT TARGET benchmark::benchmark_main)
  message(FATAL_ERROR "specdec: Google Benchmark >= 1.7 not found (the benches need it). "
                      "On Debian/Ubuntu: apt-get install libbenchmark-dev "
                      "(or set SPECDEC_BUILD_BENCH=OFF)")
endif()

function(specdec_add_bench name)
  set(sources ${ARGN})
  if(NOT sources)
    message(FATAL_ERROR "specdec_add_bench(${name}): no source given")
  endif()
  set(target "specdec.bench.${name}")
  add_executable(${target} ${sources})

  set(uses_cuda OFF)
  foreach(src IN LISTS sources)
    if(src MATCHES "\\.cu$")
      set(uses_cuda ON)
    endif()
  endforeach()
  if(uses_cuda)
    if(NOT SPECDEC_HAS_CUDA)
      message(FATAL_ERROR "specdec_add_bench(${name}): .cu source but CUDA is off")
    endif()
    target_link_libraries(${target} PRIVATE specdec::cuda)
    set_target_properties(${target} PROPERTIES
      CUDA_ARCHITECTURES "${SPECDEC_BENCH_CUDA_ARCHITECTURES}")
  else()
    target_link_libraries(${target} PRIVATE specdec::specdec)
  endif()
  target_link_libraries(${target} PRIVATE specdec_dev_flags benchmark::benchmark_main)
  if(TARGET specdec_llama2c)
    target_link_libraries(${target} PRIVATE specdec_llama2c)
  endif()
  target_compile_definitions(${target} PRIVATE NDEBUG)
  # Target options come after CMAKE_<LANG>_FLAGS_<CONFIG>, so -O3 wins over a Debug -O0.
  target_compile_options(${target} PRIVATE
    "$<$<COMPILE_LANGUAGE:CXX>:-O3>"
    "$<$<COMPILE_LANGUAGE:CUDA>:-O3;-Xcompiler=-O3>")
  if(SPECDEC_BENCH_NATIVE)
    target_compile_options(${target} PRIVATE
      "$<$<COMPILE_LANGUAGE:CXX>:-march=native;-Wno-error>"
      "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-march=native,-Wno-error>")
  endif()
endfunction()
