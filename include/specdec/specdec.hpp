// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Umbrella header: everything a host compiler can build (core, sampling, verify, cpu).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/dtype.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/cpu/verify_chain.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/verify/batch.hpp>
#include <specdec/verify/block.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/policy.hpp>
#include <specdec/verify/rejection.hpp>
#include <specdec/verify/typical.hpp>
#include <specdec/version.hpp>
