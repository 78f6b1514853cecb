/**
 * Proof of work on sealed envelopes (PROTOCOL.md §5).
 *
 * challenge = "relay-pow-v1" || recipient_user_id(16) || u64be(sent_at) || SHA-256(enc || ciphertext),
 * 68 bytes; a nonce is valid for `bits` when SHA-256(challenge || u64le(nonce)) starts with `bits` zero
 * bits, most significant bit of byte 0 first. Binding recipient and time stops a proof from being
 * replayed to another inbox or later; the 64-byte prefix lets a miner reuse one SHA-256 midstate.
 *
 * Verification is one native SHA-256. Mining runs the generated kernels of sha256-midstate.ts, either
 * in this thread (mineSync, tests) or on a pool of worker threads the caller owns (PowMiner).
 */
import * as nodeCrypto from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { MAX_POW_BITS, USER_ID_LENGTH, type UnixSeconds, type UserId } from './brand.js';
import { concatBytes, u64be, utf8 } from './bytes.js';
import { ArgumentError, ProtocolError } from './errors.js';
import { LABEL, MAX_MINED_POW_BITS } from './labels.js';
import { POW_WORKER_SOURCE, type PowJob, type PowReply, type PowWorkerData } from './pow-worker.js';
import {
  DEFAULT_POW_ENGINE,
  MAX_SEARCH_WINDOW,
  hasPowEngine,
  powMidstate,
  searchNonceWindow,
  type PowEngine,
} from './sha256-midstate.js';

export type { PowEngine } from './sha256-midstate.js';

/**
 * Length of a PoW challenge, in bytes: label (12) + recipient id (16) + u64be sent_at (8) + SHA-256 of enc ||
 * ciphertext (32).
 */
export const POW_CHALLENGE_LENGTH = 68;
const MAX_NONCE = 2n ** 64n - 1n;
const POW_LABEL = utf8(LABEL.pow);

// crypto.hash (node >= 20.12) skips the Hash object: about 1.5 µs instead of 2.5 µs per 76 bytes.
const oneShotHash = (nodeCrypto as { hash?: typeof nodeCrypto.hash }).hash;

/** The digest may be a Buffer over a shared pool: callers that hand it out copy it. */
function sha256(data: Uint8Array): Uint8Array {
  if (oneShotHash) return oneShotHash('sha256', data, 'buffer');
  return nodeCrypto.createHash('sha256').update(data).digest();
}

function powMessage(challenge: Uint8Array, nonce: bigint): Uint8Array {
  const message = new Uint8Array(POW_CHALLENGE_LENGTH + 8);
  message.set(challenge);
  new DataView(message.buffer).setBigUint64(POW_CHALLENGE_LENGTH, nonce, true);
  return message;
}

function checkChallenge(challenge: Uint8Array): void {
  if (!(challenge instanceof Uint8Array) || challenge.length !== POW_CHALLENGE_LENGTH) {
    throw new ArgumentError(`pow challenge must be ${POW_CHALLENGE_LENGTH} bytes`);
  }
}

function checkBits(bits: number, max: number): void {
  if (!Number.isInteger(bits) || bits < 0 || bits > max) {
    throw new ArgumentError(`pow bits must be an integer in 0..${max}, got ${bits}`);
  }
}

function isU64(nonce: bigint): boolean {
  return typeof nonce === 'bigint' && nonce >= 0n && nonce <= MAX_NONCE;
}

/** PROTOCOL.md §5: the 68-byte challenge of one envelope. */
export function powChallenge(
  recipientId: UserId,
  sentAt: UnixSeconds,
  enc: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  return powChallengeForDigest(recipientId, sentAt, sha256(concatBytes(enc, ciphertext)));
}

/** The same challenge from SHA-256(enc || ciphertext) computed already (the replay-cache key). */
export function powChallengeForDigest(
  recipientId: UserId,
  sentAt: UnixSeconds,
  digest: Uint8Array,
): Uint8Array {
  if (recipientId.length !== USER_ID_LENGTH) throw new ArgumentError('recipient id must be 16 bytes');
  if (!Number.isSafeInteger(sentAt) || sentAt < 0) throw new ArgumentError('sent_at must be a uint');
  return concatBytes(POW_LABEL, recipientId, u64be(sentAt), digest);
}

/** SHA-256(challenge || u64le(nonce)). */
export function powHash(challenge: Uint8Array, nonce: bigint): Uint8Array {
  checkChallenge(challenge);
  if (!isU64(nonce)) throw new ArgumentError('pow nonce must be a uint64');
  return new Uint8Array(sha256(powMessage(challenge, nonce)));
}

/** Leading zero bits, most significant bit of byte 0 first. */
export function leadingZeroBits(hash: Uint8Array): number {
  let n = 0;
  for (const byte of hash) {
    if (byte !== 0) return n + Math.clz32(byte) - 24;
    n += 8;
  }
  return n;
}

/**
 * Whether `nonce` proves `bits` (0..32) of work on `challenge`. A nonce outside uint64 is no proof
 * (false); a malformed challenge or bits value is the caller's bug (ArgumentError).
 */
export function verifyPow(challenge: Uint8Array, nonce: bigint, bits: number): boolean {
  checkChallenge(challenge);
  checkBits(bits, MAX_POW_BITS);
  if (!isU64(nonce)) return false;
  return leadingZeroBits(sha256(powMessage(challenge, nonce))) >= bits;
}

/**
 * The smallest valid nonce >= start, searching at most `maxTries` nonces (default: until 2^64 - 1);
 * undefined when none was found. Blocks the calling thread: for tests, benchmarks and small `bits`.
 */
export function mineSync(
  challenge: Uint8Array,
  bits: number,
  start = 0n,
  maxTries?: number,
  engine: PowEngine = DEFAULT_POW_ENGINE,
): bigint | undefined {
  checkChallenge(challenge);
  checkBits(bits, MAX_POW_BITS);
  if (!isU64(start)) throw new ArgumentError('start nonce must be a uint64');
  if (maxTries !== undefined && (!Number.isSafeInteger(maxTries) || maxTries < 0)) {
    throw new ArgumentError('maxTries must be a non-negative safe integer');
  }
  let left = maxTries ?? Number.POSITIVE_INFINITY;
  if (left === 0) return undefined;
  if (bits === 0) return start;
  const mid = powMidstate(challenge);
  let hi = Number(start >> 32n);
  let lo = Number(start & 0xffffffffn);
  while (left > 0) {
    const count = Math.min(MAX_SEARCH_WINDOW, 2 ** 32 - lo, left);
    const i = searchNonceWindow(mid, hi, lo, count, bits, engine);
    if (i >= 0) return (BigInt(hi) << 32n) | BigInt(lo + i);
    left -= count;
    lo += count;
    if (lo === 2 ** 32) {
      if (hi === 2 ** 32 - 1) return undefined;
      hi += 1;
      lo = 0;
    }
  }
  return undefined;
}

/**
 * How a PowMiner mines: worker threads (default availableParallelism(); 0 mines in this thread) and kernel
 * (default the fastest this runtime supports).
 */
export interface PowMinerOptions {
  /** Worker threads; 0 mines in this thread in small slices between event-loop turns. */
  readonly workers?: number;
  readonly engine?: PowEngine;
}

/** Per-call options of PowMiner.mine: an AbortSignal that stops the search and rejects with its reason. */
export interface MineOptions {
  readonly signal?: AbortSignal;
}

/** In-thread slice: long enough to amortise a turn of the event loop, short enough not to stall it. */
const IN_THREAD_WINDOW = 2 ** 14;

interface RunningJob {
  readonly id: number;
  readonly resolve: (nonce: bigint) => void;
  readonly reject: (error: unknown) => void;
  pending: number;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/**
 * A pool of mining threads. The caller creates it, shares it and closes it; nothing is global.
 * Calls to mine() run one after another, each on every worker, with the nonce space interleaved
 * among them. Idle workers are unref'd, so an open pool never keeps a process alive.
 */
export class PowMiner {
  readonly workerCount: number;
  readonly engine: PowEngine;
  private workers: Worker[] = [];
  private readonly control = new Int32Array(new SharedArrayBuffer(4));
  private nextJobId = 1;
  private running: RunningJob | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(options: PowMinerOptions = {}) {
    const workers = options.workers ?? availableParallelism();
    if (!Number.isInteger(workers) || workers < 0 || workers > 256) {
      throw new ArgumentError('workers must be an integer in 0..256');
    }
    const engine = options.engine ?? DEFAULT_POW_ENGINE;
    if (!hasPowEngine(engine)) throw new ArgumentError(`pow engine ${engine} is not available`);
    this.workerCount = workers;
    this.engine = engine;
  }

  /** A nonce proving `bits` (0..MAX_MINED_POW_BITS) on `challenge`; not necessarily the smallest. */
  mine(challenge: Uint8Array, bits: number, options: MineOptions = {}): Promise<bigint> {
    try {
      checkChallenge(challenge);
      checkBits(bits, MAX_MINED_POW_BITS);
    } catch (error) {
      return Promise.reject(error);
    }
    const { signal } = options;
    const run = async (): Promise<bigint> => {
      if (this.closed) throw new ArgumentError('PowMiner is closed');
      if (signal?.aborted) throw abortReason(signal);
      if (bits === 0) return 0n;
      return this.workerCount === 0
        ? this.mineInThread(challenge, bits, signal)
        : this.mineOnWorkers(challenge, bits, signal);
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    if (!signal) return result;
    // An abort must not wait for the searches queued before this one.
    return new Promise<bigint>((resolve, reject) => {
      const onAbort = (): void => reject(abortReason(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => signal.removeEventListener('abort', onAbort);
      result.then(
        (nonce) => {
          settle();
          resolve(nonce);
        },
        (error: unknown) => {
          settle();
          reject(error);
        },
      );
    });
  }

  /** Stops any running search and ends the worker threads. Pending and later mine() calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    this.finish((job) => job.reject(new ArgumentError('PowMiner was closed')));
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private async mineInThread(challenge: Uint8Array, bits: number, signal?: AbortSignal): Promise<bigint> {
    const mid = powMidstate(challenge);
    for (let window = 0; window < 2 ** 64 / IN_THREAD_WINDOW; window++) {
      const hi = Math.floor(window / (2 ** 32 / IN_THREAD_WINDOW));
      const lo = (window % (2 ** 32 / IN_THREAD_WINDOW)) * IN_THREAD_WINDOW;
      const i = searchNonceWindow(mid, hi, lo, IN_THREAD_WINDOW, bits, this.engine);
      if (i >= 0) return (BigInt(hi) << 32n) | BigInt(lo + i);
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.closed) throw new ArgumentError('PowMiner was closed');
      if (signal?.aborted) throw abortReason(signal);
    }
    throw new ProtocolError('no nonce in the whole uint64 space');
  }

  private mineOnWorkers(challenge: Uint8Array, bits: number, signal?: AbortSignal): Promise<bigint> {
    const workers = this.startWorkers();
    const mid = powMidstate(challenge);
    return new Promise<bigint>((resolve, reject) => {
      const id = this.nextJobId;
      this.nextJobId = (id % 0x7fffffff) + 1; // stays a positive int32, the control slot's type
      const onAbort = (): void => this.finish((job) => job.reject(abortReason(signal!)));
      const done = (): void => {
        signal?.removeEventListener('abort', onAbort);
        for (const w of this.workers) w.unref();
      };
      this.running = {
        id,
        pending: workers.length,
        resolve: (nonce) => {
          done();
          resolve(nonce);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      Atomics.store(this.control, 0, id);
      workers.forEach((w, first) => {
        w.ref();
        const job: PowJob = { job: id, state: mid.state, w0: mid.w0, bits, first, stride: workers.length };
        w.postMessage(job);
      });
    });
  }

  /** Ends the running job, if any: workers see the control slot change and stop within a window. */
  private finish(settle: (job: RunningJob) => void): void {
    const job = this.running;
    if (!job) return;
    this.running = undefined;
    Atomics.store(this.control, 0, 0);
    settle(job);
  }

  private startWorkers(): Worker[] {
    if (this.workers.length > 0) return this.workers;
    const workerData: PowWorkerData = { control: this.control, engine: this.engine };
    for (let i = 0; i < this.workerCount; i++) {
      const worker = new Worker(POW_WORKER_SOURCE, { eval: true, workerData });
      worker.unref();
      worker.on('message', (reply: PowReply) => this.onReply(reply));
      worker.on('error', (error) => this.onWorkerFailure(worker, error));
      worker.on('exit', (code) => this.onWorkerFailure(worker, new Error(`pow worker exited (${code})`)));
      this.workers.push(worker);
    }
    return this.workers;
  }

  private onReply(reply: PowReply): void {
    const job = this.running;
    if (!job || reply.job !== job.id) return; // a stale job's last word
    if (reply.kind === 'found') {
      this.finish((j) => j.resolve((BigInt(reply.hi) << 32n) | BigInt(reply.lo)));
    } else if (--job.pending === 0) {
      this.finish((j) => j.reject(new ProtocolError('no nonce in the whole uint64 space')));
    }
  }

  /** A worker that dies takes the pool with it; the next mine() starts fresh workers. */
  private onWorkerFailure(worker: Worker, error: unknown): void {
    if (!this.workers.includes(worker)) return; // terminated on purpose
    const workers = this.workers;
    this.workers = [];
    for (const w of workers) void w.terminate();
    this.finish((job) => job.reject(new Error('pow worker failed', { cause: error })));
  }
}
