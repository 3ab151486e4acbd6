#!/usr/bin/env bash
# Builds the tensorpool C ABI and installs it for C and C++ programs:
#   PREFIX/lib/libtensorpool.so, PREFIX/lib/libtensorpool.a,
#   PREFIX/include/tensorpool.h, PREFIX/include/tensorpool.hpp,
#   PREFIX/lib/pkgconfig/tensorpool.pc
#
# Usage: scripts/install-c.sh [--profile release|dev] PREFIX
#   then: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc app.c $(pkg-config --cflags --libs tensorpool)
set -euo pipefail
cd "$(dirname "$0")/.."

profile="release"
if [[ "${1:-}" == "--profile" ]]; then
  profile="${2:?--profile needs release or dev}"
  shift 2
fi
prefix="${1:?usage: scripts/install-c.sh [--profile release|dev] PREFIX}"
case "$profile" in
  release) dir="release" ;;
  dev) dir="debug" ;;
  *) echo "install-c: unknown profile $profile (release or dev)" >&2; exit 2 ;;
esac

bash scripts/setup.sh
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

cargo build --locked --profile "$profile" -p tensorpool-ffi
target="${CARGO_TARGET_DIR:-target}/$dir"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' ffi/Cargo.toml | head -n1)"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
prefix="$(cd "$prefix" && pwd)"
install -m 0755 "$target/libtensorpool.so" "$prefix/lib/"
install -m 0644 "$target/libtensorpool.a" "$prefix/lib/"
install -m 0644 ffi/include/tensorpool.h ffi/include/tensorpool.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" ffi/tensorpool.pc.in \
  > "$prefix/lib/pkgconfig/tensorpool.pc"
echo "installed tensorpool $version ($profile) under $prefix" >&2
