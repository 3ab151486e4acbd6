#!/usr/bin/env bash
# Builds DarrylGamroth/tensor_pool_c (the Wire Spec author's C implementation) from local
# sources, for the interop tests (tests/interop_tensor_pool_c.rs): its driver `tp_driver`,
# its example producer and consumer, its `tp_control_listen` (a decoder of the control,
# metadata and QoS streams), and the stock `aeronmd` its driver runs beside.
#
# Nothing is downloaded. The inputs are:
#   - tensor_pool_c's sources: TENSOR_POOL_C_SRC (a source tree), else the bare git mirror
#     $TP_MIRROR_DIR/DarrylGamroth+tensor_pool_c/repo (TP_MIRROR_DIR defaults to /work/.mirror);
#   - its one FetchContent dependency, cktan/tomlc17: TOMLC17_SRC (a tree with
#     src/tomlc17.c), else the mirror $TP_MIRROR_DIR/cktan+tomlc17/repo. No package
#     registry carries tomlc17 (crates.io, PyPI and npm have no copy), so a machine without
#     either cannot build tensor_pool_c;
#   - the Aeron 1.54 sources the rusteron-client crate vendors (as Cargo.lock pins it);
#   - sbe-tool.jar and agrona.jar from TP_JAVA_LIB (default ../shared/java/lib beside the
#     repository), and a JDK for its SBE code generation.
#
# Everything lands in target/tensor_pool_c/ ($CARGO_TARGET_DIR/tensor_pool_c/ if set):
# the sources are unpacked once per commit, CMake configures once, and a later run only
# checks the build is up to date (about a second; the first build takes about a minute on
# 2 cores, most of it aeronmd). Concurrent runs wait for each other.
#
# Prints the build directory on stdout (binaries: tp_driver, tp_example_producer_driver,
# tp_example_consumer_driver, tp_control_listen, aeron-driver/aeronmd). Exit status: 0
# built; 3 an input is missing (the reason on stderr, starting "tensor_pool_c cannot be
# built:"); 1 the build itself failed (log tail on stderr).
#
# Usage: scripts/build-tensor-pool-c.sh   (TP_C_JOBS=N overrides the parallelism, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

missing() {
  echo "tensor_pool_c cannot be built: $*" >&2
  exit 3
}

bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

target="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$target"
out="$(cd "$target" && pwd)/tensor_pool_c"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

mirror="${TP_MIRROR_DIR:-/work/.mirror}"

# Unpacks the HEAD of bare git dir $1 into $2 unless $2 already holds that commit.
unpack_git() {
  local git_dir="$1" dest="$2" commit
  commit="$(git --git-dir="$git_dir" rev-parse HEAD)"
  if [[ -f "$dest/.tp-commit" && "$(cat "$dest/.tp-commit")" == "$commit" ]]; then
    return
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  git --git-dir="$git_dir" archive HEAD | tar -x -C "$dest"
  echo "$commit" >"$dest/.tp-commit"
}

# Resolves a source tree: the directory named by env var $1, else the mirror $2 unpacked
# into $3. Prints the tree; empty when neither exists.
source_tree() {
  local override="${!1:-}" git_dir="$2" dest="$3"
  if [[ -n "$override" ]]; then
    if [[ -d "$override" ]]; then (cd "$override" && pwd); fi
    return 0
  fi
  if [[ -d "$git_dir" ]] && git --git-dir="$git_dir" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    unpack_git "$git_dir" "$dest"
    echo "$dest"
  fi
  return 0
}

tpc_src="$(source_tree TENSOR_POOL_C_SRC "$mirror/DarrylGamroth+tensor_pool_c/repo" "$out/src/tensor_pool_c")"
if [[ -z "$tpc_src" || ! -f "$tpc_src/CMakeLists.txt" ]]; then
  missing "no tensor_pool_c sources (set TENSOR_POOL_C_SRC to a checkout of DarrylGamroth/tensor_pool_c, or put its bare git mirror at $mirror/DarrylGamroth+tensor_pool_c/repo)"
fi
toml_src="$(source_tree TOMLC17_SRC "$mirror/cktan+tomlc17/repo" "$out/src/tomlc17")"
if [[ -z "$toml_src" || ! -f "$toml_src/src/tomlc17.c" ]]; then
  missing "no tomlc17 sources, tensor_pool_c's FetchContent dependency (cktan/tomlc17 is on no package registry: crates.io, PyPI and npm have no copy; set TOMLC17_SRC to a checkout of it, or put its bare git mirror at $mirror/cktan+tomlc17/repo)"
fi

lib="${TP_JAVA_LIB:-$repo/../shared/java/lib}"
for jar in sbe-tool.jar agrona.jar; do
  [[ -f "$lib/$jar" ]] || missing "$lib/$jar not found (set TP_JAVA_LIB to the directory of sbe-tool.jar and agrona.jar)"
done
lib="$(cd "$lib" && pwd)"
command -v java >/dev/null 2>&1 || missing "no java on PATH (its SBE code generation runs sbe-tool)"

# Where cargo unpacked the rusteron-client version Cargo.lock pins.
aeron="$(cargo metadata --locked --format-version 1 2>/dev/null | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
for pkg in meta["packages"]:
    if pkg["name"] == "rusteron-client":
        print(os.path.join(os.path.dirname(pkg["manifest_path"]), "aeron"))
        break
')"
if [[ -z "$aeron" || ! -f "$aeron/aeron-client/src/main/c/CMakeLists.txt" ]]; then
  missing "vendored Aeron sources of rusteron-client not found (run cargo fetch first)"
fi

build="$out/build"
configure_key="$tpc_src|$toml_src|$aeron|$lib"
if [[ ! -f "$build/CMakeCache.txt" || "$(cat "$out/.configured" 2>/dev/null)" != "$configure_key" ]]; then
  rm -rf "$build" "$out/.configured"
  echo "build-tensor-pool-c: configuring $tpc_src against Aeron $(cat "$aeron/version.txt")" >&2
  cmake -S "$tpc_src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DAERON_ROOT="$aeron" -DTP_USE_SYSTEM_AERON=OFF \
    -DFETCHCONTENT_SOURCE_DIR_TOMLC17="$toml_src" -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
    -DSBE_TOOL_JAR="$lib/sbe-tool.jar" -DSBE_TOOL_CLASSPATH="$lib/sbe-tool.jar:$lib/agrona.jar" \
    -DSBE_JAVA_MAIN=uk.co.real_logic.sbe.SbeTool >"$out/configure.log" 2>&1 \
    || { tail -40 "$out/configure.log" >&2; exit 1; }
  echo "$configure_key" >"$out/.configured"
fi
cmake --build "$build" -j "${TP_C_JOBS:-2}" --target tp_driver tp_example_producer_driver \
  tp_example_consumer_driver tp_control_listen aeronmd >"$out/build.log" 2>&1 \
  || { tail -50 "$out/build.log" >&2; exit 1; }
echo "$build"
