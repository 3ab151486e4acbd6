#!/usr/bin/env bash
# Model-checks the seqlock (src/shm/seqlock.rs) and the doorbell word
# (src/shm/doorbell_word.rs) with loom: every interleaving and every value a load may
# read, within loom's bounds. The loom/ crate compiles those very files with --cfg loom.
#
# Usage: scripts/loom.sh [extra cargo test args]     (about a minute on 2 cores, first build)
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
# Loom's own checks (e.g. LOOM_MAX_PREEMPTIONS) may be set by the caller.
cargo test --release --manifest-path loom/Cargo.toml --target-dir target/loom "$@"
