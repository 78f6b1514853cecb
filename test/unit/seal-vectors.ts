/** The relay seal vectors (test/vectors/protocol.json) as the seal tests use them, and X25519 low-order points. */
import { asUnixSeconds, asUserId } from '../../framework/relay/brand.js';
import { fromHex } from '../../framework/relay/bytes.js';
import protocol from '../vectors/protocol.json' with { type: 'json' };

export const h = fromHex;

export const recipientId = asUserId(h(protocol.recipient.user_id));
export const recipientSealKey = h(protocol.recipient.x25519_public);
export const recipientSealSecret = h(protocol.recipient.x25519_secret);
export const plaintext = h(protocol.inner_payload.cbor_padded);
export const sentAt = asUnixSeconds(protocol.access_token.sent_at);
export const hint = h(protocol.access_token.hint);
export const tokenEnv = protocol.envelope_with_token;
export const powEnv = protocol.envelope_with_pow;

/** X25519 points of small order (u-coordinates, little-endian); each makes DH output zero. */
export const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];
