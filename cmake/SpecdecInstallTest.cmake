# SPDX-License-Identifier: Apache-2.0
#
# cmake -P script behind the specdec.test.install test: installs the build tree into a fresh prefix
# under WORK_DIR, then configures, builds and runs the consumer project tests/install/ against it
# with find_package(specdec CONFIG REQUIRED).
#
# Inputs: SPECDEC_BUILD_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR, CXX_COMPILER,
#         CUDA_COMPILER and CUDA_ARCHITECTURES (empty when specdec was built without CUDA), CONFIG.
foreach(var IN ITEMS SPECDEC_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "SpecdecInstallTest.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/consumer")

function(run_step what)
  message(STATUS "install test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "install test: '${what}' failed (${rc}):\n  ${cmd}")
  endif()
endfunction()

file(REMOVE_RECURSE "${prefix}" "${consumer_build}")

run_step("install into ${prefix}"
  "${CMAKE_COMMAND}" --install "${SPECDEC_BUILD_DIR}" --prefix "${prefix}" --config "${CONFIG}")

set(configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_PREFIX_PATH=${prefix}"
  # Find only the package just installed, never one from the system or the user registry.
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(CUDA_COMPILER)
  # One architecture is enough here: every header is built for all of them in specdec's own build.
  list(APPEND configure_args "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}" -DEXPECT_SPECDEC_CUDA=ON)
  if(CUDA_ARCHITECTURES)
    list(GET CUDA_ARCHITECTURES 0 arch)
    list(APPEND configure_args "-DCMAKE_CUDA_ARCHITECTURES=${arch}")
  endif()
else()
  list(APPEND configure_args -DEXPECT_SPECDEC_CUDA=OFF)
endif()
run_step("configure the consumer" "${CMAKE_COMMAND}" ${configure_args})
run_step("build the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}")
run_step("run the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}"
         --target run_consumer)
