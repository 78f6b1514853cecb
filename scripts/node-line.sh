#!/usr/bin/env bash
# scripts/node-line.sh <major>: a Node line from the npm registry, ready to run this project, for
# `npm run test:node` and the image check. Prints shell assignments on stdout:
#   NODE_DIR      bin/node and include/node of node@<major> (its platform package node-<os>-<arch>)
#   SQLITE_BINDING better-sqlite3's native module compiled for that Node's ABI
#   SQLITE_PREBUILDS a directory with that module packed as prebuild-install expects it, so
#                 `npm ci` on that Node installs it (npm_config_better_sqlite3_local_prebuilds)
#                 instead of downloading one (no GitHub here) or compiling it again.
# The module is compiled from the installed better-sqlite3's own source, offline (node-gyp
# --nodedir: no header download). Everything is cached in ~/.cache/relay-bot/node-lines/, outside
# node_modules, so `npm ci` (which empties node_modules) does not throw it away.
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

sqlite_version="$(node -p "require('$root/node_modules/better-sqlite3/package.json').version")"
build="$cache/better-sqlite3-$sqlite_version-node-$version"
binding="$build/build/Release/better_sqlite3.node"
if [ ! -f "$binding" ]; then
  echo "node-line: compiling better-sqlite3 $sqlite_version for Node $version (a few minutes, once)" >&2
  rm -rf "$build"
  mkdir -p "$build"
  # The package's sources (binding.gyp, src/, deps/), not the build made for the machine's Node.
  (cd "$root/node_modules/better-sqlite3" && tar --exclude=./build -cf - .) | (cd "$build" && tar -xf -)
  node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
  (cd "$build" && PATH="$node_dir/bin:$PATH" "$node_bin" "$node_gyp" rebuild --release --nodedir="$node_dir" -j 2 >&2)
fi
prebuilds="$build/prebuilds"
tarball="$prebuilds/better-sqlite3-v$sqlite_version-node-v$abi-$platform.tar.gz"
if [ ! -f "$tarball" ]; then
  mkdir -p "$prebuilds"
  tar -C "$build" -czf "$tarball.tmp" build/Release/better_sqlite3.node
  mv "$tarball.tmp" "$tarball"
fi
printf 'NODE_DIR=%q\nSQLITE_BINDING=%q\nSQLITE_PREBUILDS=%q\n' "$node_dir" "$binding" "$prebuilds"
