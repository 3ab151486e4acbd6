#!/usr/bin/env bash
# Builds and runs the Java example producer or consumer (java/): generates the codecs
# from schemas/*.xml with stock sbe-tool, compiles them and java/src/main/java with plain
# javac against the jars, and runs the program with the arguments given (the same flags
# as the Rust examples; --help lists them).
#
# Usage: scripts/java-example.sh producer|consumer ARGS...
#
# The jars (sbe-tool.jar, agrona.jar, aeron-client.jar) come from TP_JAVA_LIB, by default
# ../shared/java/lib beside the repository. The build lands in target/java-example/
# ($CARGO_TARGET_DIR/java-example/ if that is set) and is redone only when a schema or a
# Java source changed. scripts/setup.sh installs a JDK where javac is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

case "${1:-}" in
  producer) main="io.tensorpool.examples.Producer" ;;
  consumer) main="io.tensorpool.examples.Consumer" ;;
  *) echo "usage: scripts/java-example.sh producer|consumer ARGS..." >&2; exit 2 ;;
esac
shift

bash scripts/setup.sh
lib="${TP_JAVA_LIB:-$repo/../shared/java/lib}"
for jar in sbe-tool.jar agrona.jar aeron-client.jar; do
  if [[ ! -f "$lib/$jar" ]]; then
    echo "java-example: $lib/$jar not found (set TP_JAVA_LIB to the directory of the jars)" >&2
    exit 1
  fi
done
lib="$(cd "$lib" && pwd)"
opens="--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED"

out="${CARGO_TARGET_DIR:-$repo/target}/java-example"
stamp="$out/classes/.built"
if [[ ! -f "$stamp" ]] || [[ -n "$(find schemas java/src -newer "$stamp" -type f | head -n1)" ]]; then
  rm -rf "$out"
  mkdir -p "$out/codecs" "$out/classes"
  java "$opens" -cp "$lib/sbe-tool.jar:$lib/agrona.jar" \
    -Dsbe.output.dir="$out/codecs" -Dsbe.target.language=Java \
    -Dsbe.validation.stop.on.error=true \
    uk.co.real_logic.sbe.SbeTool schemas/driver.xml schemas/control.xml >&2
  find "$out/codecs" java/src/main/java -name '*.java' > "$out/sources.txt"
  javac -nowarn -XDignore.symbol.file -d "$out/classes" \
    -cp "$lib/agrona.jar:$lib/aeron-client.jar" @"$out/sources.txt" 2>&1 \
    | grep -v -e 'Signal is internal proprietary API' -e '^Note:' >&2 || true
  [[ -f "$out/classes/${main//.//}.class" ]] || { echo "java-example: compilation failed" >&2; exit 1; }
  touch "$stamp"
fi
exec java "$opens" -cp "$out/classes:$lib/agrona.jar:$lib/aeron-client.jar" "$main" "$@"
