# SPDX-License-Identifier: Apache-2.0
#
# Teaches CMake < 3.26 that nvcc >= 12 takes -std=c++20 (as newer CMake's NVIDIA-CUDA.cmake does).
# Without it, a .cu target that gets cxx_std_20 (specdec::specdec carries it) or CUDA_STANDARD 20
# fails at generate time: 'requires the language dialect "CUDA20"'. Included, after
# enable_language(CUDA), by specdec's CMakeLists.txt and by the installed specdec-config.cmake;
# a no-op where CMake already knows the flag. Directory-scoped, like the variables it completes.
if(CMAKE_CUDA_COMPILER_LOADED
   AND CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA"
   AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0
   AND NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
  if(NOT "cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES)
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
  endif()
endif()
