#!/usr/bin/env bash
# Builds a stock, dynamically linked Aeron media driver (`aeronmd`, Aeron's own CMake
# target) from the Aeron sources that the rusteron-media-driver crate vendors, so the
# aeronmd plugin is tested against exactly the Aeron version this project links.
#
# The build lands in target/aeronmd/ ($CARGO_TARGET_DIR/aeronmd/ if that is set) and is
# done once (about 25 s on 2 cores): a later run only checks that it is up to date (about a
# second). Prints the path of the aeronmd binary on stdout.
#
# Usage: scripts/build-aeronmd.sh        (AERONMD_JOBS=N overrides the parallelism, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

out="${CARGO_TARGET_DIR:-$PWD/target}/aeronmd"
binary="$out/build/binaries/aeronmd"

# Where cargo unpacked the rusteron-media-driver version Cargo.lock pins.
src="$(cargo metadata --locked --format-version 1 2>/dev/null | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
for pkg in meta["packages"]:
    if pkg["name"] == "rusteron-media-driver":
        print(os.path.join(os.path.dirname(pkg["manifest_path"]), "aeron"))
        break
')"
if [[ -z "$src" || ! -f "$src/CMakeLists.txt" ]]; then
  echo "build-aeronmd: vendored Aeron sources not found (run cargo fetch first)" >&2
  exit 1
fi

if [[ ! -f "$out/build/CMakeCache.txt" ]] || ! grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$src\$" "$out/build/CMakeCache.txt"; then
  rm -rf "$out/build"
  echo "build-aeronmd: configuring Aeron from $src" >&2
  cmake -S "$src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_AERON_DRIVER=ON -DBUILD_AERON_ARCHIVE_API=OFF -DAERON_TESTS=OFF \
    -DAERON_UNIT_TESTS=OFF -DAERON_SYSTEM_TESTS=OFF -DAERON_BUILD_SAMPLES=OFF \
    -DAERON_BUILD_DOCUMENTATION=OFF -DAERON_INSTALL_TARGETS=OFF >"$out.configure.log" 2>&1 \
    || { cat "$out.configure.log" >&2; exit 1; }
fi
cmake --build "$out/build" --target aeronmd -j "${AERONMD_JOBS:-2}" >"$out.build.log" 2>&1 \
  || { tail -50 "$out.build.log" >&2; exit 1; }
echo "$binary"
