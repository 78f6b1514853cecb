/**
 * Parsing a command line must cost time linear in its length: a group member must not be able to
 * stall the bot with one crafted line. Compares the per-byte cost at 1 KiB and 64 KiB; a quadratic
 * step would make the larger input ~64x dearer per byte, the bound is 8x (best of several rounds,
 * loose enough for a noisy machine). No absolute times are compared.
 */
import {
  parseArgs,
  parseArgSpec,
  parseCommandHead,
  ParseError,
  type ArgSpec,
} from '../../framework/bot/index.js';

const SMALL = 1024;
const LARGE = 64 * 1024;
const MAX_RATIO = 8;
const WITH_REST = parseArgSpec('<a> <b:number> [c...]', 'x');
const NO_REST = parseArgSpec('<a> <b:number>', 'x');

function fill(unit: string, size: number): string {
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

const cases: Array<[string, (size: number) => string, (readonly ArgSpec[])?]> = [
  ['one long word', (n) => `/x ${fill('a', n)}`],
  ['one long quoted word full of escapes', (n) => `/x "${fill('\\"', n)}" 1`],
  ['an unclosed quote at the very end', (n) => `/x a 1 ${fill('b ', n)}"`],
  ['a long numeral', (n) => `/x a ${fill('1', n)}`],
  ['a near-number that fails at the end', (n) => `/x a ${fill('1', n)}.5.`],
  ['many words into a rest argument', (n) => `/x a 1 ${fill('w ', n)}`],
  ['white space before the arguments', (n) => `/x${fill(' \t', n)}a 1`],
  ['a control character at the end', (n) => `/x a 1 ${fill('z', n)}\u0001`],
  ['extra words after the last argument', (n) => `/x a 1 ${fill('"q" ', n)}`, NO_REST],
  ['an over-long command name', (n) => `/${fill('a', n)}`],
  ['an over-long target', (n) => `/x@${fill('b', n)}`],
];

function parseOnce(text: string, specs: readonly ArgSpec[]): void {
  try {
    const head = parseCommandHead(text);
    if (head) parseArgs(head.name, specs, head.argsText);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
  }
}

function nsPerByte(text: string, specs: readonly ArgSpec[]): number {
  const iterations = Math.max(1, Math.ceil((2 * 1024 * 1024) / text.length));
  for (let i = 0; i < iterations; i++) parseOnce(text, specs); // warm up the JIT on this shape
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) parseOnce(text, specs);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / (iterations * text.length));
  }
  return best;
}

describe('command parse cost per byte at 1 KiB vs 64 KiB', () => {
  test.each(cases)('%s', (name, build, specs = WITH_REST) => {
    const ratio = nsPerByte(build(LARGE), specs) / nsPerByte(build(SMALL), specs);
    if (process.env.RELAY_GROWTH_REPORT) console.log(`${name}: ratio ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThan(MAX_RATIO);
  });
});
