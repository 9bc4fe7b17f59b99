// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Umbrella header for CUDA translation units: specdec.hpp plus the cuda/ layer.

#include <specdec/config.hpp>

#include <specdec/cuda/block/block_executor.cuh>
#include <specdec/cuda/device/device_dspark.cuh>
#include <specdec/cuda/device/device_kv.cuh>
#include <specdec/cuda/device/device_tree.cuh>
#include <specdec/cuda/device/device_verify.cuh>
#include <specdec/cuda/kernels/kv_compact_kernel.cuh>
#include <specdec/cuda/kernels/markov_head_kernel.cuh>
#include <specdec/cuda/kernels/prefix_sched_kernel.cuh>
#include <specdec/cuda/kernels/tree_mask_kernel.cuh>
#include <specdec/cuda/kernels/verify_chain_kernel.cuh>
#include <specdec/cuda/kernels/verify_tree_kernel.cuh>
#include <specdec/cuda/launch.cuh>
#include <specdec/specdec.hpp>
