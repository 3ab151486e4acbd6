#!/usr/bin/env bash
# Installs what building tensorpool needs on a fresh Debian machine, and nothing else.
# Idempotent and quiet when everything is already present.
#
#   - libclang-dev (bindgen), libbsd-dev and uuid-dev (linking the Aeron C sources)
#   - g++ (C++ tests of the C ABI in ffi/; brings gcc and binutils' nm) and pkg-config
#     (tensorpool.pc)
#   - CMake >= 3.30 (Aeron 1.54 requires it; Debian 12 ships 3.25), from the PyPI wheel
#   - a JDK (openjdk-17-jdk-headless) where `javac` is missing: the Java interop tests and
#     scripts/java-example.sh (the jars themselves come from ../shared/java/lib or
#     TP_JAVA_LIB; the tests skip, saying why, without them)
#   - tmux (tests/tp_tool.rs checks `tp status`'s live view in a real terminal)
#
# Usage: scripts/setup.sh   (exports nothing; prints the cmake it found when run with -v)
set -euo pipefail

MIN_CMAKE="3.30"

log() { if [[ "${SETUP_VERBOSE:-0}" == "1" ]]; then echo "setup: $*" >&2; fi; }

missing_debs=()
for pkg in libclang-dev libbsd-dev uuid-dev g++ pkg-config tmux; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing_debs+=("$pkg")
  fi
done
if ! command -v javac >/dev/null 2>&1; then
  missing_debs+=(openjdk-17-jdk-headless)
fi
if ((${#missing_debs[@]})); then
  echo "setup: installing Debian packages: ${missing_debs[*]}" >&2
  SUDO=""
  if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_debs[@]}" >/dev/null
fi

cmake_ok() {
  local bin="$1" ver
  ver="$("$bin" --version 2>/dev/null | head -n1 | awk '{print $3}')" || return 1
  [[ -n "$ver" ]] || return 1
  [[ "$(printf '%s\n%s\n' "$MIN_CMAKE" "$ver" | sort -V | head -n1)" == "$MIN_CMAKE" ]]
}

if command -v cmake >/dev/null 2>&1 && cmake_ok "$(command -v cmake)"; then
  log "cmake $(cmake --version | head -n1) is new enough"
else
  echo "setup: installing cmake >= ${MIN_CMAKE} from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "cmake>=${MIN_CMAKE},<4"
  hash -r
  if ! command -v cmake >/dev/null 2>&1 || ! cmake_ok "$(command -v cmake)"; then
    echo "setup: cmake >= ${MIN_CMAKE} is still not on PATH after installing it" >&2
    exit 1
  fi
fi
