#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every SBE decoder, the driver's inbound
# control-message handling, the region-URI parser, the config loader and the consumer's
# frame acceptance (fuzz/fuzz_targets/). Runs each target for SECONDS (default 60) and
# prints one line per target: executions, corpus size, crashes. A crash leaves its input
# in fuzz/artifacts/<target>/ and fails the script; turn each into a regression test in
# tests/. The corpora grow in fuzz/corpus/ (not committed) and are reused by later runs.
#
# Usage: scripts/fuzz.sh [seconds] [target...]
#
# cargo-fuzz needs nightly compiler features; RUSTC_BOOTSTRAP=1 enables them on the
# stable toolchain. cargo-fuzz itself is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
all_targets=(sbe_driver sbe_control driver_control region_uri config consumer_frame)
[[ $# -gt 0 ]] && targets=("$@") || targets=("${all_targets[@]}")

bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.cargo/bin:$PATH"
export PATH
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds: every message the byte-pinning codec tests check (tests/common/codec.rs).
seeds="target/fuzz-seeds"
rm -rf "$seeds"
TP_FUZZ_SEED_DIR="$PWD/$seeds/sbe" cargo test --locked -q --test codec_driver --test codec_control >/dev/null
mkdir -p "$seeds/region_uri" "$seeds/config" "$seeds/consumer_frame" "$seeds/driver_control"
printf 'shm:file?path=/dev/shm/tp/7/1.pool' >"$seeds/region_uri/plain"
printf 'shm:file?path=/dev/hugepages/tp/7/2.pool|require_hugepages=true' >"$seeds/region_uri/hugepages"
cp config/*.toml "$seeds/config/"
# A consumer_frame seed: flags 1 (mapped epoch), a zeroed slot, a FrameDescriptor.
python3 - "$seeds" <<'PY'
import struct, sys, glob, os
seeds = sys.argv[1]
# FrameDescriptor (schema 900, template 4): the byte-pinning seeds already hold one.
for path in glob.glob(os.path.join(seeds, "sbe", "*")):
    data = open(path, "rb").read()
    if len(data) >= 8 and struct.unpack_from("<HHHH", data) [1:3] == (4, 900):
        open(os.path.join(seeds, "consumer_frame", os.path.basename(path)), "wb").write(b"\x01" + bytes(256) + data)
    if len(data) >= 8 and struct.unpack_from("<HHHH", data)[2] == 901 and len(data) < 256:
        # Two records: deliver the message, then again a second later.
        open(os.path.join(seeds, "driver_control", os.path.basename(path)), "wb").write(
            bytes([0, len(data)]) + data + bytes([100, len(data)]) + data)
PY

# Only cargo-fuzz's own builds (target/fuzz) see it: elsewhere it would change every
# crate's fingerprint and rebuild the test profile.
export RUSTC_BOOTSTRAP=1
work="$(mktemp -d "${TMPDIR:-/tmp}/tp-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export TP_FUZZ_SHM_DIR="$work/shm"

status=0
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    case "$target" in
        sbe_*) cp -n "$seeds"/sbe/* "$corpus"/ ;;
        *) cp -n "$seeds/$target"/* "$corpus"/ 2>/dev/null || true ;;
    esac
    log="$work/$target.log"
    if cargo fuzz run --release --sanitizer none --target-dir target/fuzz "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 >"$log" 2>&1; then
        result="ok"
    else
        result="CRASH"
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    files=$(find "$corpus" -type f | wc -l)
    echo "$target: $result, $execs executions in ${seconds}s, corpus $files files"
    if [[ $result != ok ]]; then
        grep -E 'panicked|ERROR|Test unit written' "$log" | head -5 || true
    fi
done
exit "$status"
