/**
 * The script a PowMiner worker thread runs, as text for `new Worker(source, { eval: true })`.
 *
 * Text rather than a file because the worker must start the same way under jest (TypeScript sources),
 * tsx and the compiled dist/ output, and plain JavaScript that needs only node built-ins does. It
 * embeds the search kernels of sha256-midstate.ts, so both threads run the same generated code.
 *
 * Cancellation goes through a shared Int32Array slot holding the current job id: a worker checks it
 * between windows of WORKER_WINDOW tries, so a stale search stops within one window without any
 * message having to interrupt the synchronous loop.
 */
import { POW_WASM_BYTES, SHA256_KERNEL_SOURCE, type PowEngine } from './sha256-midstate.js';

/** Tries per search call between two looks at the cancel slot: ~1 ms at 10 M tries/s, so a worker
 * still finishing a stale window delays the next search by at most that. */
export const WORKER_WINDOW = 2 ** 13;

export interface PowJob {
  readonly job: number;
  readonly state: Int32Array;
  readonly w0: number;
  readonly bits: number;
  /** This worker searches windows first, first + stride, first + 2 * stride, … of WORKER_WINDOW nonces. */
  readonly first: number;
  readonly stride: number;
}

export type PowReply =
  | { readonly job: number; readonly kind: 'found'; readonly hi: number; readonly lo: number }
  | { readonly job: number; readonly kind: 'stopped' | 'exhausted' };

export interface PowWorkerData {
  /** Int32Array over a SharedArrayBuffer: [0] = id of the job that may run, 0 for none. */
  readonly control: Int32Array;
  readonly engine: PowEngine;
}

function loopText(window: number): string {
  // Windows are numbered over the whole 2^64 nonce space: window c holds nonces c * W .. c * W + W - 1,
  // which keeps nonces small (short CBOR) whatever the number of workers.
  return `
const { parentPort, workerData } = require('node:worker_threads');
const control = workerData.control;
const search = workerData.engine === 'wasm-simd'
  ? loadWasmSearch(Buffer.from(${JSON.stringify(Buffer.from(POW_WASM_BYTES).toString('base64'))}, 'base64'))
  : powSearch;
if (search === undefined) throw new Error('pow engine ' + workerData.engine + ' is not available');
const WINDOW = ${window};
const PER_WORD = 2 ** 32 / WINDOW;
const LAST_WINDOW = 2 ** 64 / WINDOW;
parentPort.on('message', (job) => {
  const shift = 32 - job.bits;
  for (let c = job.first; c < LAST_WINDOW; c += job.stride) {
    if (Atomics.load(control, 0) !== job.job) {
      parentPort.postMessage({ job: job.job, kind: 'stopped' });
      return;
    }
    const hi = Math.floor(c / PER_WORD);
    const lo0 = (c % PER_WORD) * WINDOW;
    const hiWord = (hi << 24) | ((hi & 0xff00) << 8) | ((hi >>> 8) & 0xff00) | (hi >>> 24);
    const i = search(job.state, job.w0, hiWord, lo0 | 0, WINDOW, shift);
    if (i >= 0) {
      parentPort.postMessage({ job: job.job, kind: 'found', hi, lo: lo0 + i });
      return;
    }
  }
  parentPort.postMessage({ job: job.job, kind: 'exhausted' });
});
`;
}

/** Complete worker source: the kernels, then the job loop. */
export const POW_WORKER_SOURCE: string = `'use strict';\n${SHA256_KERNEL_SOURCE}\n${loopText(WORKER_WINDOW)}`;
