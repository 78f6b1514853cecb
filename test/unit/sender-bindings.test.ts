/**
 * SenderBindings (inbound.ts): a verified sender binding is kept and answers again without a
 * verify; a forged one is refused every time and never kept; the set stays bounded.
 */
import { randomBytes } from 'node:crypto';
import { SenderBindings, senderBindingHolds } from '../../framework/relay/inbound.js';
import type { InnerPayload } from '../../framework/relay/envelope.js';
import { generateIdentity, signSealedSenderKey } from '../../framework/relay/identity.js';
import { MSG_TYPE } from '../../framework/relay/labels.js';

function welcomeFrom(): InnerPayload {
  const id = generateIdentity();
  return {
    msgType: MSG_TYPE.welcome,
    senderId: id.userId,
    senderIdentityKey: id.signingPublic,
    sealedSenderKey: id.sealPublic,
    sealedSenderKeySignature: signSealedSenderKey(id),
    mls: new Uint8Array(1),
  } as InnerPayload;
}

test('a verified binding answers again from the set; the same fields forged do not', () => {
  const bindings = new SenderBindings(8);
  const inner = welcomeFrom();
  expect(bindings.holds(inner)).toBe(true);
  expect(bindings.holds(inner)).toBe(true);
  const forgedSig = new Uint8Array(inner.sealedSenderKeySignature!);
  forgedSig[0]! ^= 1;
  const forged = { ...inner, sealedSenderKeySignature: forgedSig };
  expect(senderBindingHolds(forged)).toBe(false);
  expect(bindings.holds(forged)).toBe(false);
  expect(bindings.holds(forged)).toBe(false);
  // Someone else's seal key under the same (valid) signature: not the kept binding.
  expect(bindings.holds({ ...inner, sealedSenderKey: new Uint8Array(randomBytes(32)) })).toBe(false);
  // Another sender id with the same identity key: key 1 does not derive from key 2.
  expect(bindings.holds({ ...inner, senderId: welcomeFrom().senderId })).toBe(false);
});

test('bounded: the least recently used binding is checked again after eviction', () => {
  const bindings = new SenderBindings(2);
  const [a, b, c] = [welcomeFrom(), welcomeFrom(), welcomeFrom()];
  for (const inner of [a, b, c, a]) expect(bindings.holds(inner)).toBe(true);
  expect((bindings as unknown as { held: Set<string> }).held.size).toBe(2);
});
