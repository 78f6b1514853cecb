/**
 * better-sqlite3 12 on Node 24.19+ (and 26) aborts the whole process (SIGABRT, "Assertion failed:
 * (env) != nullptr" in RemoveEnvironmentCleanupHook) when the garbage collector frees a prepared
 * statement outside a JavaScript context: node::ObjectWrap's destructor changed under it. The store
 * prepares statements on every query, so a bot would die at a random moment. This runs that in a
 * child process on the running Node (npm run test:node -- <major> runs it on another line), with the
 * better-sqlite3 the store picks there (framework/store/sqlite-driver.ts), and requires a clean exit.
 */
import { spawn } from 'node:child_process';
import { sqliteDriverPackage } from '../../framework/store/sqlite-driver.js';

const SCRIPT = `
const Database = require('${sqliteDriverPackage()}');
const db = new Database(':memory:');
// Enough short-lived statements for many scavenges to free them (Node 24.21 aborted in 3 runs of 3
// with 12; 13 prepares several times slower, about a minute on Node 24 on a busy 2-core machine).
for (let i = 0; i < 1000000; i++) db.prepare('SELECT ' + (i % 1000) + ' AS n').get();
db.close();
process.stdout.write('done ' + process.version);
`;

test('many prepared statements freed by the garbage collector do not abort the process', async () => {
  // process.env carries NODE_OPTIONS and NODE_PATH, so under test:node the child finds the module
  // made for that line.
  const child = spawn(process.execPath, ['-e', SCRIPT], {
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('close', (c, s) => resolve([c, s])),
  );
  expect({ code, signal, stdout, aborted: stderr.includes('Assertion failed') }).toEqual({
    code: 0,
    signal: null,
    stdout: `done ${process.version}`,
    aborted: false,
  });
}, 300_000);
