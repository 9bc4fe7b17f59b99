// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Library version numbers, as macros and as constants.

/// Major version of specdec.
#define SPECDEC_VERSION_MAJOR 0
/// Minor version of specdec (the ABI namespace changes with it while the major is 0).
#define SPECDEC_VERSION_MINOR 1
/// Patch version of specdec.
#define SPECDEC_VERSION_PATCH 0
/// The version as one integer: major * 10000 + minor * 100 + patch.
#define SPECDEC_VERSION                                                                            \
  (SPECDEC_VERSION_MAJOR * 10000 + SPECDEC_VERSION_MINOR * 100 + SPECDEC_VERSION_PATCH)
/// The version as a string literal, "major.minor.patch".
#define SPECDEC_VERSION_STRING "0.1.0"
