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
#include <specdec/cpu/verify_tree.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/kv/paged_cache.hpp>
#include <specdec/kv/recurrent_checkpoints.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/propose/ngram.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/suffix_automaton.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/sampling/partial_scan.hpp>
#include <specdec/sched/cost_profile.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/tree/builder.hpp>
#include <specdec/tree/mask.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/batch.hpp>
#include <specdec/verify/block.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/policy.hpp>
#include <specdec/verify/rejection.hpp>
#include <specdec/verify/tree.hpp>
#include <specdec/verify/tree_batch.hpp>
#include <specdec/verify/typical.hpp>
#include <specdec/version.hpp>
