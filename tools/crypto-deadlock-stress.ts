/**
 * Stress reproducer for the Node crypto deadlock described in test/fuzz/README.md ("Known hang"):
 * a KeyObject exported while a garbage key-generation job is collected. It runs our two X25519
 * paths (sealed sender through seal.ts, and the MLS provider's HPKE key generation and export that
 * `proposeUpdate` and key packages use) side by side with node:crypto's and WebCrypto's async key
 * generation, with a small young generation and frequent forced GCs so collections land inside
 * native crypto calls.
 *
 *   npx tsx tools/crypto-deadlock-stress.ts [--seconds 300] [--worker-seconds 60] [--stall 20]
 *                                           [--lanes seal,mls,foreign]
 *
 * The parent runs workers one after another (each in its own `node --expose-gc` process, each for
 * at most --worker-seconds, since one observed hang came during start-up) until the time is up. A worker reports its operation count twice a second from a timer; a deadlocked main
 * thread runs no JavaScript, so the reports stop. After `--stall` seconds without one the parent
 * prints "hung after N ops" (with the main thread's native stack when gdb is installed, which is
 * what tells this deadlock from any other stall), kills the worker and starts the next. Exit code 1
 * if any worker hung.
 */
import { execFileSync, fork } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const LANE_KINDS = ['seal', 'mls', 'foreign'] as const;
type LaneKind = (typeof LANE_KINDS)[number];

interface Options {
  lanes: LaneKind[];
  seconds: number;
  workerSeconds: number;
  stall: number;
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string, fallback: number): number => {
    const at = argv.indexOf(`--${name}`);
    const parsed = at >= 0 ? Number(argv[at + 1]) : fallback;
    if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`--${name} needs a positive number`);
    return parsed;
  };
  const at = argv.indexOf('--lanes');
  const lanes = at >= 0 ? (argv[at + 1] ?? '').split(',') : [...LANE_KINDS];
  const unknown = lanes.filter((lane) => !(LANE_KINDS as readonly string[]).includes(lane));
  if (lanes.length === 0 || unknown.length > 0)
    throw new Error(`--lanes takes some of ${LANE_KINDS.join(',')}`);
  return {
    lanes: lanes as LaneKind[],
    seconds: value('seconds', 300),
    workerSeconds: value('worker-seconds', 60),
    stall: value('stall', 20),
  };
}

// ---- the worker ---------------------------------------------------------------------------------

const WORKER_FLAG = '--worker';

/** Unpooled random bytes: ts-mls passes a Uint8Array's whole buffer on, which for a pooled Buffer is the pool. */
function fresh(length: number): Uint8Array {
  return new Uint8Array(randomBytes(length));
}
const LANES_PER_KIND = 3;

async function sealLane(count: () => Promise<void>): Promise<never> {
  const { seal, createOpener } = await import('../framework/relay/seal.js');
  const { DHKEM_X25519_HKDF_SHA256 } = await import('../framework/relay/seal-node-primitives.js');
  const kem = DHKEM_X25519_HKDF_SHA256();
  const recipientId = fresh(16) as never;
  for (;;) {
    const pair = await kem.GenerateKeyPair(true);
    const secret = await kem.SerializePrivateKey(pair.privateKey);
    const publicKey = await kem.SerializePublicKey(pair.publicKey);
    const opener = await createOpener(secret);
    const sentAt = 1_700_000_000 as never;
    const sealed = await seal({
      recipientId,
      recipientSealKey: publicKey,
      plaintext: fresh(64),
      sentAt,
    });
    await opener.open({ recipientId, sentAt, ...sealed });
    await count();
  }
}

async function mlsHpkeLane(count: () => Promise<void>): Promise<never> {
  const { createMlsContext } = await import('../framework/relay/mls/context.js');
  const cs = (await createMlsContext()).cipherSuite;
  for (;;) {
    // As proposeUpdate and key packages do: generate, then export both halves at once.
    const pair = await cs.hpke.generateKeyPair();
    await cs.hpke.exportPrivateKey(pair.privateKey);
    const publicKey = await cs.hpke.exportPublicKey(pair.publicKey);
    // As path secrets do: derive a key pair and export its private half.
    const derived = await cs.hpke.deriveKeyPair(fresh(32));
    await cs.hpke.exportPrivateKey(derived.privateKey);
    const info = fresh(8);
    const sealed = await cs.hpke.seal(await cs.hpke.importPublicKey(publicKey), fresh(32), info);
    await cs.hpke.open(pair.privateKey, sealed.enc, sealed.ct, info);
    await count();
  }
}

/** Async key generation outside our code: what any other library in the process may be doing. */
async function foreignKeygenLane(count: () => Promise<void>): Promise<never> {
  const generate = promisify(generateKeyPair);
  for (;;) {
    await generate('x25519');
    await globalThis.crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
    await count();
  }
}

const LANES: Record<LaneKind, (count: () => Promise<void>) => Promise<never>> = {
  seal: sealLane,
  mls: mlsHpkeLane,
  foreign: foreignKeygenLane,
};

async function worker(kinds: readonly LaneKind[]): Promise<void> {
  let ops = 0;
  const count = async (): Promise<void> => {
    ops++;
    // A forced full GC now and then on top of the scavenges the small young generation causes.
    if (ops % 64 === 0) (globalThis as { gc?: () => void }).gc?.();
    // Our node:crypto calls are synchronous, so a lane's awaits are all microtasks: without a
    // macrotask turn the progress timer would starve and a busy worker would look hung.
    await new Promise((resolve) => setImmediate(resolve));
  };
  setInterval(() => process.send?.({ ops }), 500);
  const lanes: Array<Promise<never>> = [];
  for (let i = 0; i < LANES_PER_KIND; i++) {
    for (const kind of kinds) lanes.push(LANES[kind](count));
  }
  await Promise.all(lanes);
}

// ---- the parent ---------------------------------------------------------------------------------

type Outcome =
  { hung: false; ops: number } | { hung: true; ops: number; afterSeconds: number; stack: string };

function runWorker(lanes: readonly LaneKind[], stallSeconds: number, deadline: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = fork(new URL(import.meta.url).pathname, [WORKER_FLAG, lanes.join(',')], {
      execArgv: ['--expose-gc', '--max-semi-space-size=1', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let ops = 0;
    let lastReport = Date.now();
    let outcome: Outcome | undefined;
    child.on('message', (m: { ops: number }) => {
      ops = m.ops;
      lastReport = Date.now();
    });
    const watchdog = setInterval(() => {
      if (Date.now() - lastReport > stallSeconds * 1000) {
        const stack = child.pid === undefined ? '' : mainThreadStack(child.pid);
        outcome = { hung: true, ops, afterSeconds: (lastReport - started) / 1000, stack };
      } else if (Date.now() >= deadline) {
        outcome = { hung: false, ops };
      } else return;
      clearInterval(watchdog);
      child.kill('SIGKILL');
    }, 250);
    child.on('exit', (code, signal) => {
      clearInterval(watchdog);
      if (outcome !== undefined) resolve(outcome);
      else reject(new Error(`worker exited on its own (code ${code}, signal ${signal}) after ${ops} ops`));
    });
  });
}

/** The hung worker's main-thread backtrace, top frames only; empty without gdb. */
function mainThreadStack(pid: number): string {
  try {
    const out = execFileSync('gdb', ['-p', String(pid), '-batch', '-ex', 'thread 1', '-ex', 'bt 25'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    });
    return out
      .split('\n')
      .filter((line) => line.startsWith('#'))
      .map((line) => `    ${line.replace(/ \(.*?\) (at|from) /, ' $1 ').slice(0, 160)}`)
      .join('\n');
  } catch {
    return '    (no stack: gdb is missing or could not attach)';
  }
}

/** Only a lock wait under the collector's weak callbacks is this deadlock; say which it was. */
function verdict(stack: string): string {
  if (!/lll_lock_wait|pthread_mutex_lock/.test(stack)) return 'stalled, main thread not waiting on a lock';
  if (stack.includes('~KeyGenJob')) return 'DEADLOCK: a collected KeyGenJob waits for a key mutex';
  return 'main thread waiting on a lock';
}

async function parent(options: Options): Promise<number> {
  const deadline = Date.now() + options.seconds * 1000;
  let hangs = 0;
  let totalOps = 0;
  let workers = 0;
  while (Date.now() < deadline) {
    workers++;
    const outcome = await runWorker(
      options.lanes,
      options.stall,
      Math.min(deadline, Date.now() + options.workerSeconds * 1000),
    );
    totalOps += outcome.ops;
    if (outcome.hung) {
      hangs++;
      console.log(
        `worker ${workers}: hung after ${outcome.ops} ops (${outcome.afterSeconds.toFixed(0)} s in), ` +
          `${verdict(outcome.stack)}\n${outcome.stack}`,
      );
    } else {
      console.log(`worker ${workers}: no hang in ${outcome.ops} ops`);
    }
  }
  console.log(
    `${hangs} hang(s) in ${workers} worker(s), ${totalOps} ops, lanes ${options.lanes.join(',')}, ` +
      `${options.seconds} s on node ${process.version}`,
  );
  return hangs > 0 ? 1 : 0;
}

const workerAt = process.argv.indexOf(WORKER_FLAG);
if (workerAt >= 0) {
  await worker((process.argv[workerAt + 1] ?? '').split(',') as LaneKind[]);
} else {
  process.exitCode = await parent(parseOptions(process.argv.slice(2)));
}
