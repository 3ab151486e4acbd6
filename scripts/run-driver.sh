#!/usr/bin/env bash
# Runs the tensorpool SHM driver on a fresh machine: installs what is missing
# (scripts/setup.sh), builds tp-driver in release mode and starts it with the embedded
# media driver on config/driver.toml (or the config given as the first argument).
#
# Usage: scripts/run-driver.sh [CONFIG.toml] [extra tp-driver args]
# Environment overrides work as usual, e.g. SHM_BASE_DIR=/dev/shm/tp RUST_LOG=debug.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

config="${1:-config/driver.toml}"
shift || true
cargo build --release --locked --bin tp-driver
exec target/release/tp-driver --config "$config" "$@"
