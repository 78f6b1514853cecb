/**
 * Proof-of-work speed (PROTOCOL.md §5), per core against native OpenSSL SHA-256 on this machine.
 *
 * How tries and compressions are counted: one PoW try hashes 76 bytes, which pads to two 64-byte
 * blocks, so a one-shot hash (node:crypto, noble) costs two compressions per try while a midstate
 * miner costs one. OpenSSL's `-bytes 64` column hashes 64-byte messages, which also pad to two
 * blocks: native compressions/s = 2 x (bytes/s / 64), per-call overhead included. That rate is the
 * baseline every "x native" ratio below divides by, so a midstate miner at 1.0x does one try in the
 * time OpenSSL does one compression.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { sha256 } from '@noble/hashes/sha2.js';
import { PowMiner, mineSync, verifyPow } from '../framework/relay/pow.js';
import {
  hasPowEngine,
  powMidstate,
  searchNonceWindow,
  type PowEngine,
} from '../framework/relay/sha256-midstate.js';
import { heading, measure, note, report, type Baseline } from './harness.js';

/** bytes/s from `openssl speed -evp sha256` for one block size, or undefined without openssl. */
function opensslBytesPerSecond(bytes: number): number | undefined {
  const out = spawnSync('openssl', ['speed', '-seconds', '2', '-bytes', String(bytes), '-evp', 'sha256'], {
    encoding: 'utf8',
  });
  if (out.status !== 0) return undefined;
  // The result line is "sha256   353483.35k": thousands of bytes per second.
  const match = /^sha256\s+([\d.]+)k\s*$/m.exec(out.stdout);
  return match ? Number(match[1]) * 1000 : undefined;
}

function randomChallenge(): Uint8Array {
  return new Uint8Array(randomBytes(68));
}

function oneShotTries(hash: (message: Uint8Array) => void): number {
  const message = new Uint8Array(76);
  message.set(randomChallenge());
  const view = new DataView(message.buffer);
  const n = 1 << 14;
  for (let i = 0; i < n; i++) {
    view.setUint32(68, i, true);
    hash(message);
  }
  return n;
}

export async function run(): Promise<void> {
  heading('native OpenSSL SHA-256 (openssl speed -seconds 2 -evp sha256)');
  const bytes64 = opensslBytesPerSecond(64);
  const bulk = opensslBytesPerSecond(16384);
  let native: Baseline | undefined;
  if (bytes64 === undefined) {
    note('openssl not found: ratios to native are omitted');
  } else {
    native = { name: 'native', value: (2 * bytes64) / 64 };
    report('64-byte messages (= 76-byte one-shot tries)', bytes64 / 64, 'hash/s');
    report('compressions, 2 per 64-byte message [baseline]', native.value, 'cmp/s');
    if (bulk !== undefined) report('compressions in 16 KiB messages (bulk, no overhead)', bulk / 64, 'cmp/s');
  }

  heading('one PoW try on one core (hashes/s; ratio = tries/s over native compressions/s)');
  const a = measure(() => oneShotTries((m) => createHash('sha256').update(m).digest()), { seconds: 1.5 });
  report('(a) node:crypto createHash, 76-byte one-shot', a.perSecond, 'hash/s', native);
  const b = measure(() => oneShotTries((m) => sha256(m)), { seconds: 1.5 });
  report('(b) @noble/hashes sha256, 76-byte one-shot', b.perSecond, 'hash/s', native);
  const mid = powMidstate(randomChallenge());
  const window = 1 << 20;
  let hi = 1;
  const engines: [PowEngine, string][] = [
    ['js', '(c) midstate, generated JS, Int32'],
    ['wasm-simd', '(d) midstate, generated WebAssembly SIMD x4'],
  ];
  for (const [engine, label] of engines) {
    if (!hasPowEngine(engine)) {
      note(`${engine} engine unavailable in this runtime`);
      continue;
    }
    // 32 bits almost never hits, so each call runs the whole window.
    const t = measure(() => (searchNonceWindow(mid, hi++, 0, window, 32, engine), window), { seconds: 2 });
    report(label, t.perSecond, 'hash/s', native);
  }

  const cores = availableParallelism();
  heading(`worker pool, ${cores} workers (default engine)`);
  const miner = new PowMiner();
  try {
    // Work done ~ the nonce found: the workers interleave windows from 0 up, so every smaller nonce
    // was tried (give or take the windows in flight). That counts tries far better than 2^bits.
    let tries = 0;
    const start = performance.now();
    while (performance.now() - start < 5000) tries += Number(await miner.mine(randomChallenge(), 24)) + 1;
    const poolRate = tries / ((performance.now() - start) / 1000);
    report(`pool hashes/s, all ${cores} cores (24-bit runs)`, poolRate, 'hash/s', native);
    if (native) report('pool hashes/s per core', poolRate / cores, 'hash/s', native);

    const runs = 20;
    let total = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await miner.mine(randomChallenge(), 18);
      total += performance.now() - t0;
    }
    report(`mean time to mine 18 bits, pool (${runs} runs)`, total / runs, 'ms');
    report('expected from the pool rate (2^18 tries)', (2 ** 18 / poolRate) * 1000, 'ms');
  } finally {
    await miner.close();
  }
  const inThread = new PowMiner({ workers: 0 });
  try {
    const runs = 10;
    let total = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await inThread.mine(randomChallenge(), 18);
      total += performance.now() - t0;
    }
    report(`mean time to mine 18 bits, in-thread (${runs} runs)`, total / runs, 'ms');
  } finally {
    await inThread.close();
  }

  heading('verification');
  const challenge = randomChallenge();
  const nonce = mineSync(challenge, 18)!;
  const v = measure(() => void verifyPow(challenge, nonce, 18), { seconds: 1 });
  report('verifyPow (one native SHA-256 of 76 bytes)', v.meanMs * 1000, 'µs');
}
