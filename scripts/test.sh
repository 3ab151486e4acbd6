#!/usr/bin/env bash
# Runs the whole tensorpool test suite on a fresh machine: installs what is missing
# (scripts/setup.sh), checks formatting and lints, then runs every test.
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The PyPI cmake wheel installs its launcher beside python3's scripts.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

cargo fmt --all --check
cargo clippy --all-targets --locked -- -D warnings
# The aeronmd plugin is a workspace member of its own (built without tensorpool's default
# features); the tests build it and scripts/build-aeronmd.sh's aeronmd when they need them.
cargo clippy -p tensorpool-aeronmd --all-targets --locked -- -D warnings
cargo test --locked "$@"
