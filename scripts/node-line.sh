#!/usr/bin/env bash
# scripts/node-line.sh <major>: a Node line from the npm registry, ready to run this project, for
# `npm run test:node` and the image check. Prints shell assignments on stdout:
#   NODE_DIR        bin/node and include/node of node@<major> (its platform package node-<os>-<arch>)
#   SQLITE_PACKAGE  the better-sqlite3 the store picks on that Node (framework/store/sqlite-driver.ts):
#                   better-sqlite3-13 where Node-API 10 exists (22.14+), else better-sqlite3 (12)
# For better-sqlite3-13 (prebuilt Node-API binaries, one build for every Node line):
#   SQLITE_NODE_PATH a node_modules directory holding it, for NODE_PATH, when this checkout's
#                   node_modules lacks it (npm skips that optional dependency on Node 20)
# For better-sqlite3 12 (a native module per Node ABI):
#   SQLITE_BINDING  its native module compiled for that Node's ABI
#   SQLITE_PREBUILDS a directory with that module packed as prebuild-install expects it, so
#                   `npm ci` on that Node installs it (npm_config_better_sqlite3_local_prebuilds)
#                   instead of downloading one (no GitHub here) or compiling it again.
# A variable that does not apply is not printed.
# 12 is compiled from the installed better-sqlite3's own source, offline (node-gyp --nodedir: no
# header download); 13 is the locked version from the registry, checked against the lockfile's
# integrity. Everything is cached in ~/.cache/relay-bot/node-lines/, outside node_modules, so
# `npm ci` (which empties node_modules) does not throw it away.
set -euo pipefail
major="${1:?usage: scripts/node-line.sh <node major, e.g. 24>}"
[[ "$major" =~ ^[0-9]+$ ]] || { echo "node-line: '$major' is not a Node major version. Fix: e.g. 24" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/relay-bot/node-lines"
node_pkg="$cache/node-$major"

find_node() {
  local candidate
  for candidate in "$node_pkg"/node_modules/node/node_modules/node-*/bin/node "$node_pkg"/node_modules/node-*/bin/node; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}
if ! node_bin="$(find_node)"; then
  echo "node-line: installing node@$major from the npm registry" >&2
  npm install --prefix "$node_pkg" --no-save --no-audit --no-fund --loglevel=error "node@$major" >&2
  node_bin="$(find_node)"
fi
node_dir="$(dirname "$(dirname "$node_bin")")"
[ -f "$node_dir/include/node/node.h" ] || { echo "node-line: $node_dir has no C headers" >&2; exit 1; }
version="$("$node_bin" -p process.version)"
abi="$("$node_bin" -p process.versions.modules)"
platform="$("$node_bin" -p "process.platform + '-' + process.arch")"
# The same rule as the store's, asked of that Node.
package="$("$node_bin" -p "Number(process.versions.napi) >= 10 ? 'better-sqlite3-13' : 'better-sqlite3'")"

# better-sqlite3-13: this checkout's, or the locked version unpacked into the cache.
sqlite13_node_path() {
  [ -f "$root/node_modules/better-sqlite3-13/package.json" ] && return 0
  local locked version integrity dir
  locked="$(node -p "const p = require('$root/package-lock.json').packages['node_modules/better-sqlite3-13']; p.version + ' ' + p.integrity")"
  read -r version integrity <<<"$locked"
  dir="$cache/better-sqlite3-$version/node_modules"
  if [ ! -f "$dir/better-sqlite3-13/package.json" ]; then
    echo "node-line: fetching better-sqlite3 $version (prebuilt Node-API binaries)" >&2
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "better-sqlite3@$version" >/dev/null)
    local got
    got="$(node -e "const c = require('crypto'), fs = require('fs');
      process.stdout.write('sha512-' + c.createHash('sha512').update(fs.readFileSync(process.argv[1])).digest('base64'))" "$tmp/better-sqlite3-$version.tgz")"
    [ "$got" = "$integrity" ] || { echo "node-line: better-sqlite3 $version does not match package-lock.json's integrity" >&2; exit 1; }
    mkdir -p "$tmp/x" && tar -C "$tmp/x" -xzf "$tmp/better-sqlite3-$version.tgz"
    mkdir -p "$dir" && rm -rf "$dir/better-sqlite3-13" && mv "$tmp/x/package" "$dir/better-sqlite3-13"
    rm -rf "$tmp"
  fi
  echo "$dir"
}

# better-sqlite3 12: compiled for that Node's ABI.
sqlite12_build() {
  local sqlite_version build
  sqlite_version="$(node -p "require('$root/node_modules/better-sqlite3/package.json').version")"
  build="$cache/better-sqlite3-$sqlite_version-node-$version"
  if [ ! -f "$build/build/Release/better_sqlite3.node" ]; then
    echo "node-line: compiling better-sqlite3 $sqlite_version for Node $version (a few minutes, once)" >&2
    rm -rf "$build"
    mkdir -p "$build"
    # The package's sources (binding.gyp, src/, deps/), not the build made for the machine's Node.
    (cd "$root/node_modules/better-sqlite3" && tar --exclude=./build -cf - .) | (cd "$build" && tar -xf -)
    local node_gyp
    node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
    (cd "$build" && PATH="$node_dir/bin:$PATH" "$node_bin" "$node_gyp" rebuild --release --nodedir="$node_dir" -j 2 >&2)
  fi
  local prebuilds="$build/prebuilds"
  local tarball="$prebuilds/better-sqlite3-v$sqlite_version-node-v$abi-$platform.tar.gz"
  if [ ! -f "$tarball" ]; then
    mkdir -p "$prebuilds"
    tar -C "$build" -czf "$tarball.tmp" build/Release/better_sqlite3.node
    mv "$tarball.tmp" "$tarball"
  fi
  echo "$build"
}

node_path='' binding='' prebuilds=''
if [ "$package" = better-sqlite3-13 ]; then
  node_path="$(sqlite13_node_path)"
else
  build="$(sqlite12_build)"
  binding="$build/build/Release/better_sqlite3.node"
  prebuilds="$build/prebuilds"
fi
emit() { [ -z "$2" ] || printf '%s=%q\n' "$1" "$2"; }
emit NODE_DIR "$node_dir"
emit SQLITE_PACKAGE "$package"
emit SQLITE_NODE_PATH "$node_path"
emit SQLITE_BINDING "$binding"
emit SQLITE_PREBUILDS "$prebuilds"
