/**
 * Decode once (issue #12): a PrivateMessage is parsed once where it arrives and its SenderData is
 * decrypted once, though both the sender peek and ts-mls's processing need it. The counts below
 * come from a cipher suite that counts its AEAD opens: an application message needs exactly two
 * (SenderData and content); before, the peek's SenderData open was repeated inside ts-mls.
 */
import type { CiphersuiteImpl } from 'ts-mls';
import { CodecError, ProtocolError } from '../../framework/relay/errors.js';
import {
  createMlsContext,
  createOneToOne,
  decodeMessage,
  encodeSession,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  peekHeader,
  processGroupMessage,
  processMessage,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { buildGroup, dec, enc, makeIdentity, nowSeconds } from './mls-helpers.js';

let ctx: MlsContext;

beforeAll(async () => {
  ctx = await createMlsContext();
});

/** `base` whose AEAD opens are counted. */
function counting(base: MlsContext): { ctx: MlsContext; opens: () => number } {
  let opens = 0;
  const cs = base.cipherSuite;
  const hpke = Object.assign(Object.create(cs.hpke) as CiphersuiteImpl['hpke'], {
    decryptAead: (...args: Parameters<CiphersuiteImpl['hpke']['decryptAead']>) => {
      opens++;
      return cs.hpke.decryptAead(...args);
    },
  });
  return { ctx: { ...base, cipherSuite: { ...cs, hpke } }, opens: () => opens };
}

async function session() {
  const now = nowSeconds();
  const bobId = makeIdentity();
  const bobKp = await generateKeyPackage(ctx, bobId, now);
  const created = await createOneToOne(ctx, makeIdentity(), bobKp.keyPackage, { now });
  const joined = await joinFromWelcome(ctx, created.welcome, created.ratchetTree, [bobKp]);
  return { alice: created.state, bob: joined.state };
}

describe('decode once', () => {
  test('decodeMessage exposes the clear header that peekHeader reads, and refuses the same inputs', async () => {
    const { alice } = await session();
    const out = await encryptApplication(ctx, alice, enc('hi'));
    const decoded = decodeMessage(out.message);
    expect({ groupId: decoded.groupId, epoch: decoded.epoch, contentType: decoded.contentType }).toEqual(
      peekHeader(out.message),
    );
    expect(decoded.bytes).toBe(out.message);
    expect(() => decodeMessage(new Uint8Array([0, 1, 2]))).toThrow(CodecError);
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    expect(() => decodeMessage(kp.keyPackage)).toThrow(ProtocolError);
  });

  test('a 1:1 application message opens its SenderData once: two AEAD opens in all', async () => {
    const { alice, bob } = await session();
    const out = await encryptApplication(ctx, alice, enc('once'));
    const counted = counting(ctx);
    const got = await processMessage(counted.ctx, bob, decodeMessage(out.message));
    expect(dec(got.plaintext)).toBe('once');
    expect(counted.opens()).toBe(2);
    // From bytes it is the same work, and the same result.
    const again = counting(ctx);
    const fromBytes = await processMessage(again.ctx, bob, out.message);
    expect(again.opens()).toBe(2);
    expect(encodeSession(fromBytes.state)).toEqual(encodeSession(got.state));
  });

  test('a group application message opens its SenderData once', async () => {
    const [alice, bob] = await buildGroup(ctx, 3);
    const out = await encryptApplication(ctx, alice!.state, enc('group once'));
    const counted = counting(ctx);
    const got = await processGroupMessage(counted.ctx, bob!.state, decodeMessage(out.message));
    expect(dec(got.plaintext)).toBe('group once');
    expect(counted.opens()).toBe(2);
  });

  test('a decoded message processes again after a failed or repeated attempt (retry on fresh state)', async () => {
    const { alice, bob } = await session();
    const out = await encryptApplication(ctx, alice, enc('twice'));
    const decoded = decodeMessage(out.message);
    const first = await processMessage(ctx, bob, decoded);
    // The same decoded message from the same state again: the memo was used up, the work is redone.
    const second = await processMessage(ctx, bob, decoded);
    expect(dec(second.plaintext)).toBe('twice');
    expect(encodeSession(second.state)).toEqual(encodeSession(first.state));
    // Past the ratchet it is refused as before.
    await expect(processMessage(ctx, first.state, decoded)).rejects.toThrow();
  });
});
