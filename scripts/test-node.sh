#!/usr/bin/env bash
# npm run test:node -- <major> [jest arguments]: the test suite (or the tests given) on another Node
# line from the npm registry (scripts/node-line.sh installs it and readies the better-sqlite3 the
# store picks on it, framework/store/sqlite-driver.ts).
#   npm run test:node -- 24                        # the whole suite on Node 24
#   npm run test:node -- 22 test/store test/unit   # a subset
# Node 22.14+ (Node-API 10): better-sqlite3-13, prebuilt for every line. node_modules has it when
# npm ran on such a Node; installed on Node 20, it lacks it, and NODE_PATH points at a copy.
# Older lines: better-sqlite3 12, whose native module is per ABI. scripts/native-binding.cjs makes
# that Node load the module compiled for it instead of node_modules' build, which npm made for the
# machine's Node and which another ABI refuses.
# The CLI subprocess tests (test/cli) start the CLI with a cleaned environment, without these:
# the image check (RELAY_TEST_IMAGE=1 npm test -- test/image) runs the CLI on the image's Node from a fresh install.
set -euo pipefail
major="${1:?usage: npm run test:node -- <node major, e.g. 24> [jest arguments]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
line="$(bash "$root/scripts/node-line.sh" "$major")"
SQLITE_NODE_PATH='' SQLITE_BINDING=''
eval "$line"
echo "test:node: jest on Node $("$NODE_DIR/bin/node" --version) with $SQLITE_PACKAGE" >&2
cd "$root"
export PATH="$NODE_DIR/bin:$PATH"
export NODE_OPTIONS="--experimental-vm-modules"
if [ -n "$SQLITE_NODE_PATH" ]; then
  export NODE_PATH="$SQLITE_NODE_PATH${NODE_PATH:+:$NODE_PATH}"
fi
if [ -n "$SQLITE_BINDING" ]; then
  export RELAY_BETTER_SQLITE3_BINDING="$SQLITE_BINDING"
  NODE_OPTIONS="$NODE_OPTIONS --require $root/scripts/native-binding.cjs"
fi
exec "$NODE_DIR/bin/node" "$root/node_modules/jest/bin/jest.js" "$@"
