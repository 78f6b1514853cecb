// The checking constructors of the group id brands (brand.ts).
import { asGroupIdHex, groupIdHexOf } from '../../framework/relay/brand.js';
import { ArgumentError } from '../../framework/relay/errors.js';

describe('GroupIdHex', () => {
  it('brands 64 lowercase hex characters as they are', () => {
    const hex = '0123456789abcdef'.repeat(4);
    expect(asGroupIdHex(hex)).toBe(hex);
  });

  it.each([
    ['uppercase', 'AB'.repeat(32)],
    ['too short', 'ab'.repeat(31)],
    ['too long', 'ab'.repeat(33)],
    ['not hex', 'zz'.repeat(32)],
    ['empty', ''],
  ])('refuses %s input with an ArgumentError naming the shape', (_what, hex) => {
    expect(() => asGroupIdHex(hex)).toThrow(ArgumentError);
    expect(() => asGroupIdHex(hex)).toThrow(/64 lowercase hex characters/);
  });

  it('encodes exactly 32 group id bytes', () => {
    const bytes = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    expect(groupIdHexOf(bytes)).toBe(Buffer.from(bytes).toString('hex'));
    expect(() => groupIdHexOf(new Uint8Array(16))).toThrow(/group id must be 32 bytes/);
  });
});
