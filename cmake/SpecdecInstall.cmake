# SPDX-License-Identifier: Apache-2.0
#
# install(): headers (the HEADERS file set: every .hpp and .cuh), the exported targets
# specdec::specdec [+ specdec::cuda], and the package config + version files, so that
#   find_package(specdec 0.1 CONFIG REQUIRED [COMPONENTS cuda])
# works from any install prefix. Tested by the specdec.test.install CTest test.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SPECDEC_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/specdec"
    CACHE STRING "Where to install specdec's CMake package files (relative to the prefix)")
mark_as_advanced(SPECDEC_INSTALL_CMAKEDIR)

# Two export sets: a host-only user of a CUDA-enabled install then needs no CUDA toolkit
# (specdec-config.cmake loads the cuda set only when CUDAToolkit is found or the 'cuda' component
# is requested).
install(TARGETS specdec
  EXPORT specdec-targets
  FILE_SET HEADERS DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT specdec-targets
  NAMESPACE specdec::
  DESTINATION "${SPECDEC_INSTALL_CMAKEDIR}")
if(SPECDEC_HAS_CUDA)
  install(TARGETS specdec_cuda EXPORT specdec-cuda-targets)
  install(EXPORT specdec-cuda-targets
    NAMESPACE specdec::
    DESTINATION "${SPECDEC_INSTALL_CMAKEDIR}")
endif()

# Read by specdec-config.cmake.in: CUDAToolkit is looked for only when specdec::cuda was exported.
set(SPECDEC_EXPORTS_CUDA ${SPECDEC_HAS_CUDA})
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/specdec-config.cmake.in"
  "${PROJECT_BINARY_DIR}/specdec-config.cmake"
  INSTALL_DESTINATION "${SPECDEC_INSTALL_CMAKEDIR}")
# 0.x: minor versions may break the API, so a request for 0.1 accepts only 0.1.*. Header-only:
# any pointer size will do.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/specdec-config-version.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_SOURCE_DIR}/cmake/specdec-cuda-std.cmake"
  "${PROJECT_BINARY_DIR}/specdec-config.cmake"
  "${PROJECT_BINARY_DIR}/specdec-config-version.cmake"
  DESTINATION "${SPECDEC_INSTALL_CMAKEDIR}")
