#!/usr/bin/env bash
# Soak under chaos (scripts/soak.py): tp-driver, the example producer and several verifying
# consumers run while a chaos loop kill -9s and restarts them at random; fails on a corrupt
# frame accepted, a lease or epoch reused, or resources that grow and do not come back.
#
# Usage: scripts/soak.sh --minutes N [--consumers K] [--rate FPS] [--seed S] [--logs DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
cargo build --release --locked --bin tp-driver --example producer --example consumer
exec python3 scripts/soak.py "$@"
