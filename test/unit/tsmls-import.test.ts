// ts-mls 1.6.4 imports @noble/hashes without declaring it; this guards our pin that supplies it.
import { getCiphersuiteImpl, getCiphersuiteFromName } from 'ts-mls';
import { toHex, fromHex, u64be, u64le } from '../../framework/relay/bytes.js';

test('ts-mls imports and provides suite 0x0001', async () => {
  const impl = await getCiphersuiteImpl(
    getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'),
  );
  expect(impl.name).toBe('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519');
});

test('byte helpers', () => {
  expect(toHex(fromHex('00ff10'))).toBe('00ff10');
  expect(() => fromHex('ABC')).toThrow();
  expect(toHex(u64be(1))).toBe('0000000000000001');
  expect(toHex(u64le(1))).toBe('0100000000000000');
});
