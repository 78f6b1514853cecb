/**
 * SHA-256 (FIPS 180-4 §6.2) specialised for the proof-of-work search of PROTOCOL.md §5.
 *
 * A PoW message is 76 bytes: a 68-byte challenge and an 8-byte little-endian nonce. Its padded form
 * (FIPS 180-4 §5.1.1) is two 64-byte blocks, and block 1 is the first 64 challenge bytes, fixed per
 * envelope. So the miner compresses block 1 once (the "midstate") and then needs one compression per
 * try, of a block 2 whose 16 big-endian words are:
 *   W0 = challenge[64..68], W1 = bswap(nonce low 32 bits), W2 = bswap(nonce high 32 bits),
 *   W3 = 0x80000000 (the padding bit), W4..W14 = 0, W15 = 76 * 8 (the message length in bits).
 * Only W1 changes in the inner loop, so round 0, most of round 1 and every message-schedule term that
 * does not depend on W1 are computed once per call, outside the loop; and since PROTOCOL.md allows at
 * most 32 bits of work, only the first output word is computed.
 *
 * The search is described once as a small straight-line program (below) and compiled by two back
 * ends: JavaScript source text (Int32 arithmetic, fully unrolled) and a WebAssembly module that runs
 * four nonces at once in 128-bit SIMD lanes. Both are plain data, so a worker thread can load them no
 * matter whether the caller runs under jest, tsx or the compiled dist/ output. The generators only
 * emit fixed code from the tables here; no input ever reaches the generated code's text.
 */
import { ArgumentError } from './errors.js';

/** FIPS 180-4 §4.2.2: the 64 round constants. */
const K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
] as const;

/** FIPS 180-4 §5.3.3: the initial hash value. */
const IV = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
] as const;

/** Bytes in a PoW message: the 68-byte challenge plus the u64le nonce. */
const MESSAGE_BYTES = 76;
const PADDING_WORD = 0x80000000;

// ---------------------------------------------------------------------------------------------------
// The search program: expressions over 32-bit words, assignments to named variables.

type Expr =
  | { k: 'ref'; name: string }
  | { k: 'lit'; value: number }
  | { k: 'add' | 'xor'; xs: Expr[] }
  | { k: 'shr' | 'shl' | 'rotr'; x: string; n: number }
  | { k: 'ch'; e: string; f: string; g: string }
  | { k: 'maj'; a: string; b: string; c: string };

interface Stmt {
  readonly dst: string;
  readonly e: Expr;
}

/**
 * Inputs m0..m7 (midstate), w0 and w2 (block-2 words 0 and 2) and, per try, W1; output h0 (first hash
 * word). `pre` runs once per call, `body` once per try.
 */
interface SearchProgram {
  readonly pre: Stmt[];
  readonly body: Stmt[];
}

const ref = (name: string): Expr => ({ k: 'ref', name });
const lit = (value: number): Expr => ({ k: 'lit', value: value | 0 });
const add = (...xs: Expr[]): Expr => ({ k: 'add', xs });
const xor = (...xs: Expr[]): Expr => ({ k: 'xor', xs });
const rotr = (x: string, n: number): Expr => ({ k: 'rotr', x, n });
const shr = (x: string, n: number): Expr => ({ k: 'shr', x, n });
// FIPS 180-4 §4.1.2.
const bigSigma0 = (x: string): Expr => xor(rotr(x, 2), rotr(x, 13), rotr(x, 22));
const bigSigma1 = (x: string): Expr => xor(rotr(x, 6), rotr(x, 11), rotr(x, 25));
const smallSigma0 = (x: string): Expr => xor(rotr(x, 7), rotr(x, 18), shr(x, 3));
const smallSigma1 = (x: string): Expr => xor(rotr(x, 17), rotr(x, 19), shr(x, 10));

// The same σ functions on numbers, to fold the literal words of block 2 at generation time.
const rotrN = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
const smallSigma0N = (x: number): number => rotrN(x, 7) ^ rotrN(x, 18) ^ (x >>> 3);
const smallSigma1N = (x: number): number => rotrN(x, 17) ^ rotrN(x, 19) ^ (x >>> 10);

type Vars = readonly [string, string, string, string, string, string, string, string];

/**
 * One round of FIPS 180-4 §6.2.2 step 3, reusing variables instead of shifting them: T1 lands in h,
 * d += T1 becomes the new e, h += T2 becomes the new a. Returns the renamed working variables.
 */
function round(v: Vars, kw: Expr, out: Stmt[]): Vars {
  const [a, b, c, d, e, f, g, h] = v;
  out.push({ dst: h, e: add(ref(h), bigSigma1(e), { k: 'ch', e, f, g }, kw) });
  out.push({ dst: d, e: add(ref(d), ref(h)) });
  out.push({ dst: h, e: add(ref(h), bigSigma0(a), { k: 'maj', a, b, c }) });
  return [h, a, b, c, d, e, f, g];
}

/** How the program knows each block-2 word: fixed by the protocol, fixed per call, or per try. */
type Word = { kind: 'literal'; value: number } | { kind: 'perCall'; name: string } | { kind: 'perTry' };

function buildSearchProgram(): SearchProgram {
  const pre: Stmt[] = [];
  const body: Stmt[] = [];
  const words: Word[] = [];
  for (let t = 0; t < 16; t++) {
    if (t === 0) words.push({ kind: 'perCall', name: 'w0' });
    else if (t === 1) words.push({ kind: 'perTry' });
    else if (t === 2) words.push({ kind: 'perCall', name: 'w2' });
    else if (t === 3) words.push({ kind: 'literal', value: PADDING_WORD | 0 });
    else if (t === 15) words.push({ kind: 'literal', value: MESSAGE_BYTES * 8 });
    else words.push({ kind: 'literal', value: 0 });
  }
  const wName = (t: number): string => {
    const w = words[t]!;
    return w.kind === 'perCall' ? w.name : `W${t}`;
  };

  // Message schedule, FIPS 180-4 §6.2.2 step 1: W_t = σ1(W_t-2) + W_t-7 + σ0(W_t-15) + W_t-16.
  // Literal terms fold into one number and per-call terms into one variable C_t; a per-try word is
  // computed in the body just before the round that first reads it.
  const scheduleAt = new Map<number, Stmt>();
  for (let t = 16; t < 64; t++) {
    let literal = 0;
    const perCall: Expr[] = [];
    const perTry: Expr[] = [];
    const terms = [
      { fn: smallSigma1, fnN: smallSigma1N, i: t - 2 },
      { fn: undefined, fnN: undefined, i: t - 7 },
      { fn: smallSigma0, fnN: smallSigma0N, i: t - 15 },
      { fn: undefined, fnN: undefined, i: t - 16 },
    ];
    for (const { fn, fnN, i } of terms) {
      const w = words[i]!;
      if (w.kind === 'literal') literal = (literal + (fnN ? fnN(w.value) : w.value)) | 0;
      else (w.kind === 'perCall' ? perCall : perTry).push(fn ? fn(wName(i)) : ref(wName(i)));
    }
    if (perTry.length === 0 && perCall.length === 0) {
      words.push({ kind: 'literal', value: literal });
    } else if (perTry.length === 0) {
      pre.push({ dst: `W${t}`, e: add(...perCall, lit(literal)) });
      words.push({ kind: 'perCall', name: `W${t}` });
    } else {
      const constant: Expr[] = [];
      if (perCall.length > 0) {
        pre.push({ dst: `C${t}`, e: add(...perCall, lit(literal)) });
        constant.push(ref(`C${t}`));
      } else if (literal !== 0) constant.push(lit(literal));
      scheduleAt.set(t, { dst: `W${t}`, e: add(...perTry, ...constant) });
      words.push({ kind: 'perTry' });
    }
  }
  // K_t + W_t as a round reads it: literal, a per-call variable, or a per-try sum.
  const kw = (t: number): Expr => {
    const w = words[t]!;
    if (w.kind === 'literal') return lit(K[t]! + w.value);
    if (w.kind === 'perCall') {
      pre.push({ dst: `KW${t}`, e: add(ref(w.name), lit(K[t]!)) });
      return ref(`KW${t}`);
    }
    return add(ref(`W${t}`), lit(K[t]!));
  };

  // Round 0 reads only the midstate and W0: once per call.
  const init: Vars = ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'];
  init.forEach((s, i) => pre.push({ dst: s, e: ref(`m${i}`) }));
  const [a1, b1, c1, d1, e1, f1, g1, h1] = round(init, kw(0), pre);
  // Round 1: everything but the W1 term is per call.
  pre.push({ dst: 'T1c', e: add(ref(h1), bigSigma1(e1), { k: 'ch', e: e1, f: f1, g: g1 }, lit(K[1]!)) });
  pre.push({ dst: 'T2c', e: add(bigSigma0(a1), { k: 'maj', a: a1, b: b1, c: c1 }) });
  body.push({ dst: 'T1', e: add(ref('T1c'), ref('W1')) });
  body.push({ dst: 'x0', e: add(ref('T1'), ref('T2c')) });
  body.push({ dst: 'x4', e: add(ref(d1), ref('T1')) });
  // Copies, since the rounds below overwrite their variables and the per-call values must survive.
  [a1, b1, c1, e1, f1, g1].forEach((name, i) =>
    body.push({ dst: `x${[1, 2, 3, 5, 6, 7][i]}`, e: ref(name) }),
  );
  let v: Vars = ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7'];
  for (let t = 2; t < 63; t++) {
    const s = scheduleAt.get(t);
    if (s) body.push(s);
    v = round(v, kw(t), body);
  }
  // Round 63: only the new `a` matters, since only H0 = a + m0 is checked (FIPS 180-4 §6.2.2 step 4).
  const s63 = scheduleAt.get(63);
  if (s63) body.push(s63);
  const [a, b, c, , e, f, g, h] = v;
  body.push({
    dst: 'a64',
    e: add(ref(h), bigSigma1(e), { k: 'ch', e, f, g }, kw(63), bigSigma0(a), { k: 'maj', a, b, c }),
  });
  body.push({ dst: 'h0', e: add(ref('a64'), ref('m0')) });
  return { pre, body };
}

// ---------------------------------------------------------------------------------------------------
// JavaScript back end.

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

function jsExpr(e: Expr): string {
  switch (e.k) {
    case 'ref':
      return e.name;
    case 'lit':
      return hex(e.value);
    case 'add':
      return `(${e.xs.map(jsExpr).join(' + ')})`;
    case 'xor':
      return `(${e.xs.map(jsExpr).join(' ^ ')})`;
    case 'shr':
      return `(${e.x} >>> ${e.n})`;
    case 'shl':
      return `(${e.x} << ${e.n})`;
    case 'rotr': // V8 compiles this pattern to one rotate instruction
      return `(${e.x} >>> ${e.n} | ${e.x} << ${32 - e.n})`;
    case 'ch':
      return `(${e.g} ^ (${e.e} & (${e.f} ^ ${e.g})))`;
    case 'maj':
      return `((${e.a} & ${e.b}) | (${e.c} & (${e.a} | ${e.b})))`;
  }
}

function jsStmt(s: Stmt): string {
  // Sums of up to six int32 stay exact in a double; `| 0` wraps them mod 2^32.
  return `${s.dst} = ${jsExpr(s.e)}${s.e.k === 'add' ? ' | 0' : ''};`;
}

/**
 * `powSearch(m, w0, w2, lo0, count, shift)`: the offset i in [0, count) of the first nonce low word
 * lo0 + i whose first hash word h0 has `h0 >>> shift === 0`, or -1. `m` is the midstate (8 int32),
 * `w2` the byte-swapped nonce high word, shift = 32 - bits for bits in 1..32.
 */
function jsSearchText(p: SearchProgram): string {
  const names = new Set<string>();
  for (const s of [...p.pre, ...p.body]) names.add(s.dst);
  names.add('W1');
  return [
    'function powSearch(m, w0, w2, lo0, count, shift) {',
    `let ${[...names].join(', ')};`,
    'const m0 = m[0] | 0, m1 = m[1] | 0, m2 = m[2] | 0, m3 = m[3] | 0;',
    'const m4 = m[4] | 0, m5 = m[5] | 0, m6 = m[6] | 0, m7 = m[7] | 0;',
    ...p.pre.map(jsStmt),
    'for (let i = 0; i < count; i++) {',
    'const lo = (lo0 + i) | 0;',
    // The nonce is u64le, so its low 4 bytes read big-endian (FIPS 180-4 §3.1) are bswap(lo).
    'W1 = (lo << 24) | ((lo & 0xff00) << 8) | ((lo >>> 8) & 0xff00) | (lo >>> 24);',
    ...p.body.map(jsStmt),
    'if ((h0 >>> shift) === 0) return i;',
    '}',
    'return -1;',
    '}',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// WebAssembly back end (WebAssembly core spec 2.0 binary format, SIMD 128): four nonces per step.

const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32GeU: 0x4f,
  i32Ctz: 0x68,
  i32Add: 0x6a,
  simd: 0xfd,
} as const;
// SIMD opcodes (after the 0xfd prefix).
const simd = {
  v128Const: 0x0c,
  i8x16Swizzle: 0x0e,
  i32x4Splat: 0x11,
  i32x4Eq: 0x37,
  v128Or: 0x50,
  v128Xor: 0x51,
  v128Bitselect: 0x52,
  i32x4Bitmask: 0xa4,
  i32x4Shl: 0xab,
  i32x4ShrU: 0xad,
  i32x4Add: 0xae,
} as const;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function wasmSearchModule(p: SearchProgram): Uint8Array {
  const params = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'w0', 'w2', 'lo0', 'count', 'shift'];
  const [pLo0, pCount, pShift] = [10, 11, 12];
  const iLocal = params.length;
  const maskLocal = iLocal + 1;
  const vectors = new Map<string, number>();
  const vec = (name: string): number => {
    let idx = vectors.get(name);
    if (idx === undefined) {
      idx = params.length + 2 + vectors.size;
      vectors.set(name, idx);
    }
    return idx;
  };
  const code: number[] = [];
  const s = (o: number): void => {
    code.push(op.simd, ...uleb(o));
  };
  const v128Const = (bytes: number[]): void => {
    s(simd.v128Const);
    code.push(...bytes);
  };
  const splatConst = (x: number): void => {
    const b = [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff];
    v128Const([...b, ...b, ...b, ...b]);
  };
  const emitBinary = (xs: Expr[], o: number): void => {
    xs.forEach((x, i) => {
      emit(x);
      if (i > 0) s(o);
    });
  };
  const shiftBy = (x: string, n: number, o: number): void => {
    code.push(op.localGet, ...uleb(vec(x)), op.i32Const, ...sleb(n));
    s(o);
  };
  function emit(e: Expr): void {
    switch (e.k) {
      case 'ref':
        code.push(op.localGet, ...uleb(vec(e.name)));
        return;
      case 'lit':
        splatConst(e.value);
        return;
      case 'add':
        emitBinary(e.xs, simd.i32x4Add);
        return;
      case 'xor':
        emitBinary(e.xs, simd.v128Xor);
        return;
      case 'shr':
        shiftBy(e.x, e.n, simd.i32x4ShrU);
        return;
      case 'shl':
        shiftBy(e.x, e.n, simd.i32x4Shl);
        return;
      case 'rotr': // no SIMD rotate in WebAssembly: two shifts and an or
        shiftBy(e.x, e.n, simd.i32x4ShrU);
        shiftBy(e.x, 32 - e.n, simd.i32x4Shl);
        s(simd.v128Or);
        return;
      case 'ch': // bitselect(f, g, e) takes f's bit where e's is set, else g's
        code.push(
          op.localGet,
          ...uleb(vec(e.f)),
          op.localGet,
          ...uleb(vec(e.g)),
          op.localGet,
          ...uleb(vec(e.e)),
        );
        s(simd.v128Bitselect);
        return;
      case 'maj': // where a and c differ, b decides; where they agree, a
        code.push(op.localGet, ...uleb(vec(e.b)), op.localGet, ...uleb(vec(e.a)));
        code.push(op.localGet, ...uleb(vec(e.a)), op.localGet, ...uleb(vec(e.c)));
        s(simd.v128Xor);
        s(simd.v128Bitselect);
        return;
    }
  }
  const assign = (st: Stmt): void => {
    emit(st.e);
    code.push(op.localSet, ...uleb(vec(st.dst)));
  };

  for (let i = 0; i < 10; i++) {
    code.push(op.localGet, i);
    s(simd.i32x4Splat);
    code.push(op.localSet, ...uleb(vec(params[i]!)));
  }
  p.pre.forEach(assign);
  code.push(op.block, 0x40, op.loop, 0x40);
  code.push(op.localGet, iLocal, op.localGet, pCount, op.i32GeU, op.brIf, 1);
  // Lanes k = 0..3 try low word lo0 + i + k; W1 is each lane byte-swapped.
  code.push(op.localGet, pLo0, op.localGet, iLocal, op.i32Add);
  s(simd.i32x4Splat);
  v128Const([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
  s(simd.i32x4Add);
  v128Const([3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12]);
  s(simd.i8x16Swizzle);
  code.push(op.localSet, ...uleb(vec('W1')));
  p.body.forEach(assign);
  code.push(op.localGet, ...uleb(vec('h0')), op.localGet, pShift);
  s(simd.i32x4ShrU);
  splatConst(0);
  s(simd.i32x4Eq);
  s(simd.i32x4Bitmask);
  code.push(op.localTee, maskLocal, op.if, 0x40);
  code.push(op.localGet, iLocal, op.localGet, maskLocal, op.i32Ctz, op.i32Add, op.return, op.end);
  code.push(op.localGet, iLocal, op.i32Const, 4, op.i32Add, op.localSet, iLocal, op.br, 0);
  code.push(op.end, op.end, op.i32Const, ...sleb(-1), op.end);

  const locals = [2, ...uleb(2), I32, ...uleb(vectors.size), V128];
  const body = [...locals, ...code];
  const name = [...new TextEncoder().encode('powSearch')];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, ...uleb(params.length), ...params.map(() => I32), 1, I32]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...uleb(name.length), ...name, 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

// ---------------------------------------------------------------------------------------------------
// Loader text shared by this thread and the worker threads.

/** A plain FIPS 180-4 §6.2.2 compression, used once per envelope for the midstate and by tests. */
const COMPRESS_TEXT = `function compressBlock(state, block) {
  const K = [${K.map(hex).join(', ')}];
  const w = new Int32Array(64);
  for (let t = 0; t < 16; t++) w[t] = block[t];
  for (let t = 16; t < 64; t++) {
    const x = w[t - 2], y = w[t - 15];
    w[t] = (${jsExpr(smallSigma1('x'))} + w[t - 7] + ${jsExpr(smallSigma0('y'))} + w[t - 16]) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let t = 0; t < 64; t++) {
    const t1 = (h + ${jsExpr(bigSigma1('e'))} + ${jsExpr({ k: 'ch', e: 'e', f: 'f', g: 'g' })} + K[t] + w[t]) | 0;
    const t2 = (${jsExpr(bigSigma0('a'))} + ${jsExpr({ k: 'maj', a: 'a', b: 'b', c: 'c' })}) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  for (const [i, x] of [a, b, c, d, e, f, g, h].entries()) state[i] = (state[i] + x) | 0;
}`;

/** Wraps the WebAssembly export in powSearch's signature; undefined where SIMD is unavailable. */
const WASM_LOADER_TEXT = `function loadWasmSearch(bytes) {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(bytes)) return undefined;
  const f = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.powSearch;
  return (m, w0, w2, lo0, count, shift) => {
    // The last step may run up to 3 lanes past count; a hit there is not in the window.
    const r = f(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], w0, w2, lo0, count, shift);
    return r >= 0 && r < count ? r : -1;
  };
}`;

const program = buildSearchProgram();

/**
 * JavaScript source defining `compressBlock(state, block)`, `powSearch(m, w0, w2, lo0, count, shift)`
 * and `loadWasmSearch(bytes)` (same signature as powSearch, or undefined). Self-contained, no imports.
 */
export const SHA256_KERNEL_SOURCE: string = [COMPRESS_TEXT, jsSearchText(program), WASM_LOADER_TEXT, ''].join(
  '\n',
);

/** The SIMD search module; loadWasmSearch(POW_WASM_BYTES) gives the fast powSearch. */
export const POW_WASM_BYTES: Uint8Array = wasmSearchModule(program);

/** Largest window one search call takes (keeps the lane counter far from int32 overflow). */
export const MAX_SEARCH_WINDOW = 2 ** 30;

type CompressFn = (state: Int32Array, block: Int32Array) => void;
type SearchFn = (m: Int32Array, w0: number, w2: number, lo0: number, count: number, shift: number) => number;

// Evaluated once at module load: the text is a constant of this module (see the header comment).
const kernel = new Function(
  `${SHA256_KERNEL_SOURCE}\nreturn { compressBlock, powSearch, loadWasmSearch };`,
)() as {
  compressBlock: CompressFn;
  powSearch: SearchFn;
  loadWasmSearch: (b: Uint8Array) => SearchFn | undefined;
};

/** Which compiled search runs: 'wasm-simd' (four lanes) or 'js' (one try at a time). */
export type PowEngine = 'wasm-simd' | 'js';

const engines: { readonly [E in PowEngine]?: SearchFn } = {
  js: kernel.powSearch,
  'wasm-simd': kernel.loadWasmSearch(POW_WASM_BYTES),
};

/** The fastest engine this runtime supports. */
export const DEFAULT_POW_ENGINE: PowEngine = engines['wasm-simd'] ? 'wasm-simd' : 'js';

export function hasPowEngine(engine: PowEngine): boolean {
  return engines[engine] !== undefined;
}

/** The per-envelope part of a search: state after block 1, and word 0 of block 2. */
export interface PowMidstate {
  readonly state: Int32Array;
  readonly w0: number;
}

function readWordBE(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
}

function byteSwap(x: number): number {
  return (x << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

/** Compress block 1 (challenge bytes 0..64) from the IV; `challenge` is 68 bytes (callers check). */
export function powMidstate(challenge: Uint8Array): PowMidstate {
  const state = Int32Array.from(IV, (x) => x | 0);
  const block = new Int32Array(16);
  for (let i = 0; i < 16; i++) block[i] = readWordBE(challenge, i * 4);
  kernel.compressBlock(state, block);
  return { state, w0: readWordBE(challenge, 64) };
}

/**
 * The first nonce hi * 2^32 + lo0 + i, i in [0, count), whose hash has at least `bits` (1..32)
 * leading zero bits, as i; or -1. The caller keeps lo0 + count <= 2^32 and count <= MAX_SEARCH_WINDOW.
 */
export function searchNonceWindow(
  mid: PowMidstate,
  hi: number,
  lo0: number,
  count: number,
  bits: number,
  engine: PowEngine = DEFAULT_POW_ENGINE,
): number {
  const search = engines[engine];
  if (!search) throw new ArgumentError(`pow engine ${engine} is not available in this runtime`);
  return search(mid.state, mid.w0, byteSwap(hi), lo0 | 0, count, 32 - bits);
}

/** SHA-256(challenge || u64le(nonce)) through the midstate, for cross-checks against other hashes. */
export function midstateHash(mid: PowMidstate, nonce: bigint): Uint8Array {
  const state = Int32Array.from(mid.state);
  const block = new Int32Array(16);
  block[0] = mid.w0;
  block[1] = byteSwap(Number(nonce & 0xffffffffn));
  block[2] = byteSwap(Number((nonce >> 32n) & 0xffffffffn));
  block[3] = PADDING_WORD | 0;
  block[15] = MESSAGE_BYTES * 8;
  kernel.compressBlock(state, block);
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) view.setInt32(i * 4, state[i]!, false);
  return out;
}
