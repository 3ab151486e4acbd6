#!/usr/bin/env bash
# Runs a stock Aeron media driver (aeronmd, built by scripts/build-aeronmd.sh) with the
# tensorpool SHM driver plugin on config/driver.toml (or the config given as the first
# argument): the same three environment variables an existing aeronmd deployment adds.
#
# Usage: scripts/run-aeronmd.sh [CONFIG.toml]
# Aeron's own variables work as usual (AERON_DIR, AERON_THREADING_MODE=DEDICATED, ...), and
# so do tensorpool's overrides (SHM_BASE_DIR=/dev/shm/tp, RUST_LOG=debug).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

config="$(realpath "${1:-config/driver.toml}")"
cargo build --release --locked -p tensorpool-aeronmd
aeronmd="$(scripts/build-aeronmd.sh)"

export AERON_DRIVER_DYNAMIC_LIBRARIES="${CARGO_TARGET_DIR:-$PWD/target}/release/libtensorpool_aeronmd.so"
export AERON_NAME_RESOLVER_SUPPLIER=tensorpool_aeronmd_name_resolver_supplier
export TENSORPOOL_DRIVER_CONFIG="$config"
exec "$aeronmd"
