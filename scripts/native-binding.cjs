// Preloaded by scripts/test-node.sh (node --require): loads better-sqlite3's native module compiled
// for the running Node (RELAY_BETTER_SQLITE3_BINDING) instead of node_modules' build, which npm made
// for the machine's Node and which another ABI refuses to load.
'use strict';
const binding = process.env.RELAY_BETTER_SQLITE3_BINDING;
if (binding) {
  const dlopen = process.dlopen;
  process.dlopen = function (module, filename, ...rest) {
    const target = /[\\/]better_sqlite3\.node$/.test(filename) ? binding : filename;
    return dlopen.call(this, module, target, ...rest);
  };
}
