import fc from 'fast-check';
import {
  decodeMap,
  decodeMapWithLayout,
  defineSchema,
  encodeMap,
  mapBytesWithout,
  MAX_MAP_ENTRIES,
  MAX_NESTING_DEPTH,
  bytesHeaderLength,
  type SchemaValue,
} from '../../framework/relay/codec.js';
import { fromHex, toHex } from '../../framework/relay/bytes.js';
import { ArgumentError, CodecError } from '../../framework/relay/errors.js';

const schema = defineSchema('Test', 4096, {
  small: { key: 0, type: 'uint', required: true, max: 1000 },
  id: { key: 1, type: 'bytes', required: true, length: 4 },
  blob: { key: 2, type: 'bytes', required: false, minLength: 1, maxLength: 300 },
  big: { key: 3, type: 'uint64', required: false },
  name: { key: 24, type: 'text', required: false, maxBytes: 8 },
});
type Value = SchemaValue<typeof schema.fields>;

const hex = (h: string): Uint8Array => fromHex(h.replace(/\s+/g, ''));
const codecError = (h: string | Uint8Array): CodecError => {
  try {
    decodeMap(schema, typeof h === 'string' ? hex(h) : h);
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    return err as CodecError;
  }
  throw new Error('expected a CodecError');
};

// {0: 1, 1: h'00010203'}: the smallest valid message.
const MIN = 'a2 0001 01 4400010203';

describe('encodeMap', () => {
  test('produces RFC 8949 §4.2.1 deterministic bytes', () => {
    const v: Value = { small: 500, id: hex('00010203'), big: 2n ** 64n - 1n, name: 'hé' };
    // keys 0,1,3,24 ascending; 500 as 19 01f4; 24 as 18 18; uint64 max as 1b ff..ff.
    expect(toHex(encodeMap(schema, v))).toBe(
      'a4' + '001901f4' + '014400010203' + '031bffffffffffffffff' + '18186368c3a9',
    );
  });

  test('omits absent optional fields and encodes subarray views by their own bytes', () => {
    const backing = hex('ff00010203ff');
    expect(toHex(encodeMap(schema, { small: 1, id: backing.subarray(1, 5) }))).toBe(MIN.replace(/\s/g, ''));
  });

  test('refuses values that break the schema with ArgumentError', () => {
    const ok: Value = { small: 1, id: hex('00010203') };
    expect(() => encodeMap(schema, { ...ok, small: 1001 })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, small: -1 })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, small: 1.5 })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, id: hex('00') })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, blob: new Uint8Array(0) })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, blob: new Uint8Array(301) })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, big: 2n ** 64n })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, name: '123456789' })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { ...ok, name: '\ud800' })).toThrow(ArgumentError);
    expect(() => encodeMap(schema, { small: 1 } as Value)).toThrow(ArgumentError);
  });

  test('defineSchema refuses duplicate keys and unbounded byte fields', () => {
    expect(() =>
      defineSchema('X', 10, {
        a: { key: 1, type: 'uint', required: true },
        b: { key: 1, type: 'uint', required: true },
      }),
    ).toThrow(ArgumentError);
    expect(() => defineSchema('X', 10, { a: { key: 1, type: 'bytes', required: true } })).toThrow(
      ArgumentError,
    );
  });
});

describe('decodeMap accepts', () => {
  test('the minimal message', () => {
    const v = decodeMap(schema, hex(MIN));
    expect(v.small).toBe(1);
    expect(toHex(v.id)).toBe('00010203');
    expect(v.blob).toBeUndefined();
  });

  test('uint64 values as bigint, at both ends of their shortest forms', () => {
    expect(decodeMap(schema, hex(`a3 0001 01 4400010203 03 17`)).big).toBe(23n);
    expect(decodeMap(schema, hex(`a3 0001 01 4400010203 03 1b0000000100000000`)).big).toBe(2n ** 32n);
    expect(decodeMap(schema, hex(`a3 0001 01 4400010203 03 1bffffffffffffffff`)).big).toBe(2n ** 64n - 1n);
  });

  test('and ignores unknown integer keys with nested values', () => {
    // key 4: [1, -1, h'', "a", {1: null}, true]; key 25: {}; key 2^32-1: false
    const withUnknown = `a5 0001 01 4400010203 04 86 01 20 40 6161 a1 01 f6 f5 1819 a0 1affffffff f4`;
    expect(decodeMap(schema, hex(withUnknown)).small).toBe(1);
  });
});

describe('decodeMap rejects (each with CodecError)', () => {
  test.each([
    ['empty input', '', /truncated/],
    ['not a map', '8100', /not a CBOR map/],
    ['a bare integer', '01', /not a CBOR map/],
    ['duplicate keys', 'a3 0001 0002 01 4400010203', /duplicate map key/],
    ['unsorted keys', 'a2 01 4400010203 0001', /deterministic order/],
    ['indefinite-length map', 'bf 0001 01 4400010203 ff', /indefinite/],
    ['indefinite-length byte string', 'a2 0001 01 5f 4400010203 ff', /indefinite/],
    ['a stray break', 'a2 0001 01 ff', /indefinite/],
    ['non-shortest integer value', 'a2 00 1801 01 4400010203', /more bytes than necessary/],
    ['non-shortest key', 'a2 1800 01 01 4400010203', /more bytes than necessary/],
    ['non-shortest byte-string length', 'a2 0001 01 5804 00010203', /more bytes than necessary/],
    ['non-shortest map length', 'b802 0001 01 4400010203', /more bytes than necessary/],
    ['non-shortest uint64', 'a3 0001 01 4400010203 03 1b00000000ffffffff', /more bytes than necessary/],
    ['trailing bytes', MIN + '00', /trailing bytes/],
    ['a second map after the first', MIN + 'a0', /trailing bytes/],
    ['truncated input', 'a2 0001 01 44000102', /not enough data/],
    ['map count larger than the input', 'a3 0001 01 4400010203', /truncated/],
    ['a text key', 'a3 0001 01 4400010203 6161 01', /keys must be unsigned/],
    ['a negative key', 'a3 20 01 0001 01 4400010203', /keys must be unsigned/],
    ['a byte-string key', 'a3 0001 01 4400010203 4100 01', /keys must be unsigned/],
    ['a key above 2^32-1', 'a3 0001 01 4400010203 1b0000000100000000 01', /key too large/],
    ['a uint where bytes are expected', 'a2 0001 01 01', /expected a byte string/],
    ['text where bytes are expected', 'a2 0001 01 6400010203', /expected a byte string/],
    ['bytes where a uint is expected', 'a2 00 4101 01 4400010203', /expected an unsigned integer/],
    ['a negative integer where a uint is expected', 'a2 00 20 01 4400010203', /expected an unsigned integer/],
    ['a float where a uint is expected', 'a2 00 f93c00 01 4400010203', /expected an unsigned integer/],
    ['uint above the field max', 'a2 00 1903e9 01 4400010203', /out of range/],
    ['fixed-length field too short', 'a2 0001 01 43000102', /bad length 3/],
    ['fixed-length field too long', 'a2 0001 01 450001020304', /bad length 5/],
    ['bytes below minLength', 'a3 0001 01 4400010203 02 40', /bad length 0/],
    ['bytes above maxLength', `a3 0001 01 4400010203 02 59012d ${'00'.repeat(301)}`, /bad length 301/],
    ['text above maxBytes', 'a3 0001 01 4400010203 1818 69 313233343536373839', /longer than 8 bytes/],
    ['invalid UTF-8 text', 'a3 0001 01 4400010203 1818 62 c328', /invalid UTF-8/],
    ['a missing required field', 'a1 0001', /required field id/],
    ['a float in an unknown field', 'a3 0001 01 4400010203 04 f93c00', /unsupported CBOR item \(float\)/],
    ['a tag in an unknown field', 'a3 0001 01 4400010203 04 c101', /unsupported CBOR item \(tag\)/],
    ['undefined in an unknown field', 'a3 0001 01 4400010203 04 f7', /undefined values/],
    ['a simple value in an unknown field', 'a3 0001 01 4400010203 04 f0', /simple values/],
    [
      'unsorted keys in a nested map',
      'a3 0001 01 4400010203 04 a2 02f6 01f6',
      /nested map keys duplicate or unsorted/,
    ],
    [
      'duplicate keys beyond 2^53 in a nested map',
      'a3 0001 01 4400010203 04 a2 1b0020000000000001 f6 1b0020000000000001 f6',
      /nested map keys duplicate or unsorted/,
    ],
    ['a text key in a nested map', 'a3 0001 01 4400010203 04 a1 6161 f6', /nested map keys must be unsigned/],
    [
      'invalid UTF-8 in an unknown field',
      'a3 0001 01 4400010203 04 62 c328',
      /invalid UTF-8 in an unknown field/,
    ],
    [
      'integers beyond 64 bits (bignum tag)',
      'a3 0001 01 4400010203 03 c2 4101',
      /expected an unsigned integer/,
    ],
  ])('%s', (_name, input, reason) => {
    expect(codecError(input).message).toMatch(reason);
  });

  test('nesting deeper than the cap in an unknown field', () => {
    const ok = 'a3 0001 01 4400010203 04 ' + '81'.repeat(MAX_NESTING_DEPTH - 2) + '00';
    expect(decodeMap(schema, hex(ok)).small).toBe(1);
    codecError('a3 0001 01 4400010203 04 ' + '81'.repeat(MAX_NESTING_DEPTH - 1) + '00');
    // Very deep nesting must not overflow the stack either.
    const roomy = defineSchema('Roomy', 1 << 20, { a: { key: 0, type: 'uint', required: true } });
    expect(() => decodeMap(roomy, hex('a2 0001 01' + '81'.repeat(100_000) + '00'))).toThrow(
      /nested too deeply/,
    );
  });

  test('more entries than the cap, before reading them', () => {
    const err = codecError(hex('b8' + (MAX_MAP_ENTRIES + 1).toString(16)));
    expect(err.message).toMatch(/too many entries/);
  });

  test('input over the schema size cap, before parsing', () => {
    const err = codecError(new Uint8Array(4097));
    expect(err.message).toMatch(/limit/);
  });

  test('uint fields that do not fit a safe integer', () => {
    const wide = defineSchema('Wide', 100, { n: { key: 0, type: 'uint', required: true } });
    expect(() => decodeMap(wide, hex('a1 00 1b0020000000000000'))).toThrow(CodecError);
    expect(decodeMap(wide, hex('a1 00 1b001fffffffffffff')).n).toBe(Number.MAX_SAFE_INTEGER);
  });
});

const valueArb: fc.Arbitrary<Value> = fc.record(
  {
    small: fc.integer({ min: 0, max: 1000 }),
    id: fc.uint8Array({ minLength: 4, maxLength: 4 }),
    blob: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    big: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    name: fc.string({ unit: 'grapheme', maxLength: 8 }).filter((s) => Buffer.byteLength(s) <= 8),
  },
  { requiredKeys: ['small', 'id'] },
);

describe('properties', () => {
  test('decode(encode(v)) == v and re-encoding is byte-identical', () => {
    fc.assert(
      fc.property(valueArb, (v) => {
        const bytes = encodeMap(schema, v);
        const back = decodeMap(schema, bytes);
        expect(back).toEqual(v);
        expect(toHex(encodeMap(schema, back))).toBe(toHex(bytes));
      }),
    );
  });

  test('arbitrary bytes never throw anything but CodecError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          decodeMap(schema, bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  test('mutated valid encodings are rejected or decode to a canonical encoding', () => {
    const mutated = fc
      .tuple(valueArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert'))
      .map(([v, at, byte, how]) => {
        const b = encodeMap(schema, v);
        const i = at % b.length;
        if (how === 'flip') {
          const c = b.slice();
          c[i] = byte;
          return c;
        }
        if (how === 'cut') return b.subarray(0, i);
        return Uint8Array.from([...b.subarray(0, i), byte, ...b.subarray(i)]);
      });
    fc.assert(
      fc.property(mutated, (bytes) => {
        let decoded: { value: Value; layout: { entries: readonly { key: number }[] } };
        try {
          decoded = decodeMapWithLayout(schema, bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
          return;
        }
        // Whatever is accepted with only known keys is the one deterministic encoding of its value.
        if (decoded.layout.entries.every((e) => schema.byKey.has(e.key))) {
          expect(toHex(encodeMap(schema, decoded.value))).toBe(toHex(bytes));
        }
      }),
      { numRuns: 5000 },
    );
  });

  test('our encoding matches an independent RFC 8949 §4.2.1 reference encoder', () => {
    fc.assert(
      fc.property(valueArb, (v) => {
        const entries: [number, number | bigint | Uint8Array | string][] = [];
        for (const [name, spec] of Object.entries(schema.fields)) {
          const x = (v as Record<string, number | bigint | Uint8Array | string | undefined>)[name];
          if (x !== undefined) entries.push([spec.key, x]);
        }
        expect(toHex(encodeMap(schema, v))).toBe(toHex(referenceMap(entries)));
      }),
      { numRuns: 500 },
    );
  });
});

/** Shortest-form head (RFC 8949 §3.1, §4.2.1), written independently of cborg. */
function head(major: number, n: number | bigint): number[] {
  const x = BigInt(n);
  const m = major << 5;
  if (x < 24n) return [m | Number(x)];
  const width = x < 0x100n ? 1 : x < 0x10000n ? 2 : x < 0x100000000n ? 4 : 8;
  const out = [m | { 1: 24, 2: 25, 4: 26, 8: 27 }[width]!];
  for (let i = width - 1; i >= 0; i--) out.push(Number((x >> BigInt(8 * i)) & 0xffn));
  return out;
}

function referenceMap(entries: [number, number | bigint | Uint8Array | string][]): Uint8Array {
  const out: number[] = head(5, entries.length);
  for (const [k, v] of [...entries].sort((a, b) => a[0] - b[0])) {
    out.push(...head(0, k));
    if (typeof v === 'number' || typeof v === 'bigint') out.push(...head(0, v));
    else if (typeof v === 'string') {
      const b = new TextEncoder().encode(v);
      out.push(...head(3, b.length), ...b);
    } else out.push(...head(2, v.length), ...v);
  }
  return Uint8Array.from(out);
}

describe('mapBytesWithout', () => {
  test('drops one entry, keeps unknown ones byte for byte and fixes the header', () => {
    const bytes = hex('a4 0001 01 4400010203 04 8101 1819 f5');
    const { layout } = decodeMapWithLayout(schema, bytes);
    expect(layout.entries.map((e) => e.key)).toEqual([0, 1, 4, 25]);
    expect(toHex(mapBytesWithout(bytes, layout, 1))).toBe('a3' + '0001' + '048101' + '1819f5');
    expect(toHex(mapBytesWithout(bytes, layout, 7))).toBe(toHex(bytes));
  });

  test('bytesHeaderLength follows RFC 8949 §3.1 shortest forms', () => {
    expect([0, 23, 24, 255, 256, 65535, 65536].map(bytesHeaderLength)).toEqual([1, 1, 2, 2, 3, 3, 5]);
  });
});
