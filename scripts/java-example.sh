#!/usr/bin/env bash
# Builds and runs the Java example producer or consumer (java/) with the arguments given
# (the same flags as the Rust examples; --help lists them).
#
# Usage: scripts/java-example.sh producer|consumer ARGS...
#
# With Maven (`mvn` on PATH): `mvn -f java/pom.xml package` with the published Aeron,
# Agrona and sbe-tool artifacts, the local repository in target/m2 (online the first
# time, offline once the pom's artifacts are there), the build in target/java.
# Without Maven: the codecs generated from schemas/*.xml with stock sbe-tool and compiled
# with java/src/main/java by plain javac against the jars of TP_JAVA_LIB (by default
# ../shared/java/lib beside the repository: sbe-tool.jar, agrona.jar, aeron-client.jar)
# into target/java-example/, redone only when a schema or a Java source changed.
# target/ is $CARGO_TARGET_DIR when that is set. TP_JAVA_BUILD=javac forces the javac
# build. scripts/setup.sh installs a JDK where javac is missing.
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
opens="--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED"
target="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"

# Maven: the jar's manifest names its dependencies, copied beside it into lib/.
maven_build() {
  local built="$target/java" repository="$target/m2"
  local resolved="$repository/.tensorpool-resolved-pom.xml"
  mkdir -p "$repository"
  local mvn=(mvn -B -q -Dstyle.color=never -f java/pom.xml "-Dmaven.repo.local=$repository"
    "-Dtp.java.build=$built" package)
  # One build at a time: the tests (tests/java_support) take the same lock.
  exec 9>"$target/java.lock"
  flock 9
  if cmp -s java/pom.xml "$resolved" && "${mvn[@]}" -o >&2; then
    :
  else
    # First build, a changed pom, or artifacts missing from the repository: download.
    "${mvn[@]}" >&2 || { echo "java-example: mvn -f java/pom.xml package failed" >&2; exit 1; }
    cp java/pom.xml "$resolved"
  fi
  exec 9>&-
  classpath="$built/tensorpool-java-examples.jar"
}

javac_build() {
  local lib="${TP_JAVA_LIB:-$repo/../shared/java/lib}"
  for jar in sbe-tool.jar agrona.jar aeron-client.jar; do
    if [[ ! -f "$lib/$jar" ]]; then
      echo "java-example: the javac build needs $lib/$jar (set TP_JAVA_LIB to the" \
        "directory of sbe-tool.jar, agrona.jar and aeron-client.jar, or install Maven)" >&2
      exit 1
    fi
  done
  lib="$(cd "$lib" && pwd)"
  local out="$target/java-example"
  local stamp="$out/classes/.built"
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
  classpath="$out/classes:$lib/agrona.jar:$lib/aeron-client.jar"
}

if [[ "${TP_JAVA_BUILD:-}" != javac ]] && command -v mvn >/dev/null 2>&1; then
  maven_build
else
  javac_build
fi
exec java "$opens" -cp "$classpath" "$main" "$@"
