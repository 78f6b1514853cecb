#!/usr/bin/env bash
# npm run test:node -- <major> [jest arguments]: the test suite (or the tests given) on another Node
# line from the npm registry (scripts/node-line.sh installs it and compiles better-sqlite3 for it).
# scripts/native-binding.cjs makes that Node load the module compiled for it instead of
# node_modules' build, which npm made for the machine's Node and which another ABI refuses.
#   npm run test:node -- 24                        # the whole suite on Node 24
#   npm run test:node -- 22 test/store test/unit   # a subset
# The CLI subprocess tests (test/cli) start the CLI with a cleaned environment, without the hook:
# the image check (npm run image:check) runs the CLI on the image's Node from a fresh install.
set -euo pipefail
major="${1:?usage: npm run test:node -- <node major, e.g. 24> [jest arguments]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
line="$(bash "$root/scripts/node-line.sh" "$major")"
eval "$line"
echo "test:node: jest on Node $("$NODE_DIR/bin/node" --version)" >&2
cd "$root"
export PATH="$NODE_DIR/bin:$PATH"
export RELAY_BETTER_SQLITE3_BINDING="$SQLITE_BINDING"
export NODE_OPTIONS="--experimental-vm-modules --require $root/scripts/native-binding.cjs"
exec "$NODE_DIR/bin/node" "$root/node_modules/jest/bin/jest.js" "$@"
