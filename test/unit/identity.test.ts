import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { asGroupId } from '../../framework/relay/brand.js';
import { fromHex, toHex } from '../../framework/relay/bytes.js';
import { ArgumentError, ConfigError } from '../../framework/relay/errors.js';
import {
  credentialIdentity,
  deriveUserId,
  ed25519Sign,
  ed25519Verify,
  generateIdentity,
  identityFromSecrets,
  signSealedSenderKey,
  userIdFromHex,
  userIdToHex,
  verifySealedSenderKey,
} from '../../framework/relay/identity.js';
import {
  DEFAULT_TOPIC_PREFIX,
  groupTopic,
  inboxTopic,
  keysTopic,
  parseTopic,
  topicParser,
  topicIdForGroup,
  validateTopicPrefix,
} from '../../framework/relay/topics.js';

const vectors = JSON.parse(readFileSync(new URL('../vectors/protocol.json', import.meta.url), 'utf8')) as {
  identity: Record<string, string>;
  recipient: Record<string, string>;
  topic: Record<string, string>;
  sealed_sender_key_signature: Record<string, string>;
};
const seed = (b: number): Uint8Array => new Uint8Array(32).fill(b);

describe('identity (PROTOCOL.md §2) against vectors.json', () => {
  const v = vectors.identity;
  const id = identityFromSecrets(fromHex(v.ed25519_seed!), fromHex(v.x25519_secret!));

  test('keys and user id', () => {
    expect(toHex(id.signingPublic)).toBe(v.ed25519_public);
    expect(toHex(id.sealPublic)).toBe(v.x25519_public);
    expect(userIdToHex(id.userId)).toBe(v.user_id);
    expect(toHex(deriveUserId(id.signingPublic))).toBe(v.user_id);
  });

  test('the recipient identity', () => {
    const r = vectors.recipient;
    const rid = identityFromSecrets(fromHex(r.ed25519_seed!), fromHex(r.x25519_secret!));
    expect(userIdToHex(rid.userId)).toBe(r.user_id);
    expect(toHex(rid.sealPublic)).toBe(r.x25519_public);
  });

  test('sealed-sender key signature is the known answer and verifies', () => {
    const s = vectors.sealed_sender_key_signature;
    const sig = signSealedSenderKey(id);
    expect(toHex(sig)).toBe(s.signature);
    expect(ed25519Verify(id.signingPublic, fromHex(s.signed_bytes!), sig)).toBe(true);
    expect(verifySealedSenderKey(id.signingPublic, id.sealPublic, sig)).toBe(true);
    expect(verifySealedSenderKey(id.signingPublic, seed(9), sig)).toBe(false);
    expect(verifySealedSenderKey(id.signingPublic, id.sealPublic.subarray(1), sig)).toBe(false);
    const other = identityFromSecrets(seed(7), seed(8));
    expect(verifySealedSenderKey(other.signingPublic, id.sealPublic, sig)).toBe(false);
  });

  test('the secrets are copied, so wiping the inputs does not change the identity', () => {
    const s = seed(1);
    const fresh = identityFromSecrets(s, seed(2));
    s.fill(0);
    expect(toHex(fresh.signingSeed)).toBe(v.ed25519_seed);
  });
});

describe('user ids', () => {
  test('hex round trip and strict parsing', () => {
    const id = userIdFromHex('cfb251f2b123ab140c92a4f5c3860593');
    expect(userIdToHex(id)).toBe('cfb251f2b123ab140c92a4f5c3860593');
    for (const bad of [
      '',
      'CFB251F2B123AB140C92A4F5C3860593',
      'cfb251f2b123ab140c92a4f5c38605',
      'zz'.repeat(16),
    ]) {
      expect(() => userIdFromHex(bad)).toThrow(ArgumentError);
    }
    expect(() => userIdFromHex('cfb251f2b123ab140c92a4f5c386059300')).toThrow(/32 lowercase hex/);
  });

  test('credential identity is the ASCII of the 32 hex characters', () => {
    const id = userIdFromHex(vectors.identity.user_id!);
    expect(Buffer.from(credentialIdentity(id)).toString('latin1')).toBe(vectors.identity.user_id);
    expect(credentialIdentity(id)).toHaveLength(32);
  });

  test('deriveUserId refuses a key of the wrong length', () => {
    expect(() => deriveUserId(new Uint8Array(31))).toThrow(ArgumentError);
  });
});

describe('Ed25519 (RFC 8032)', () => {
  test('RFC 8032 §7.1 TEST 1', () => {
    const sk = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    const pk = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    const sig = ed25519Sign(sk, new Uint8Array(0));
    expect(toHex(sig)).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
    expect(ed25519Verify(pk, new Uint8Array(0), sig)).toBe(true);
  });

  test('agrees with @noble/curves on random keys and messages', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 200 }),
        (sk, msg) => {
          const sig = ed25519Sign(sk, msg);
          expect(toHex(sig)).toBe(toHex(ed25519.sign(msg, sk)));
          expect(ed25519Verify(ed25519.getPublicKey(sk), msg, sig)).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
  });

  test('verify returns false, never throws, on malformed or wrong input', () => {
    const id = identityFromSecrets(seed(1), seed(2));
    const msg = new Uint8Array([1, 2, 3]);
    const sig = ed25519Sign(id.signingSeed, msg);
    expect(ed25519Verify(id.signingPublic, msg, sig)).toBe(true);
    expect(ed25519Verify(id.signingPublic, new Uint8Array([1, 2, 4]), sig)).toBe(false);
    const flipped = sig.slice();
    flipped[63]! ^= 0x80;
    expect(ed25519Verify(id.signingPublic, msg, flipped)).toBe(false);
    expect(ed25519Verify(id.signingPublic, msg, sig.subarray(0, 63))).toBe(false);
    expect(ed25519Verify(id.signingPublic.subarray(1), msg, sig)).toBe(false);
    expect(ed25519Verify(new Uint8Array(32).fill(0xff), msg, sig)).toBe(false);
    expect(ed25519Verify(new Uint8Array(32), msg, new Uint8Array(64))).toBe(false);
    expect(ed25519Verify('x' as unknown as Uint8Array, msg, sig)).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 70 }), (pub, s) => {
        expect(typeof ed25519Verify(pub, msg, s)).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });

  test('signing refuses a seed of the wrong length', () => {
    expect(() => ed25519Sign(new Uint8Array(31), new Uint8Array(0))).toThrow(ArgumentError);
    expect(() => identityFromSecrets(new Uint8Array(32), new Uint8Array(16))).toThrow(ArgumentError);
  });
});

describe('generateIdentity', () => {
  test('uses the injected random source', () => {
    let next = 1;
    const id = generateIdentity((n) => new Uint8Array(n).fill(next++));
    expect(userIdToHex(id.userId)).toBe(vectors.identity.user_id);
    expect(toHex(id.sealPublic)).toBe(vectors.identity.x25519_public);
  });

  test('default source gives distinct, self-consistent identities', () => {
    const a = generateIdentity();
    const b = generateIdentity();
    expect(toHex(a.userId)).not.toBe(toHex(b.userId));
    expect(toHex(deriveUserId(a.signingPublic))).toBe(toHex(a.userId));
    expect(verifySealedSenderKey(a.signingPublic, a.sealPublic, signSealedSenderKey(a))).toBe(true);
  });
});

describe('topics (PROTOCOL.md §3)', () => {
  const uid = userIdFromHex(vectors.identity.user_id!);

  test('topic id vector', () => {
    expect(topicIdForGroup(asGroupId(fromHex(vectors.topic.mls_group_id!)))).toBe(vectors.topic.topic_id);
  });

  test('topic names', () => {
    expect(keysTopic(DEFAULT_TOPIC_PREFIX, uid)).toBe('relay/u/cfb251f2b123ab140c92a4f5c3860593/keys');
    expect(inboxTopic('acme/relay', uid)).toBe('acme/relay/u/cfb251f2b123ab140c92a4f5c3860593/inbox');
    const t = topicIdForGroup(asGroupId(seed(3)));
    expect(groupTopic('relay', t)).toBe('relay/g/d11732eec66701d840e672e7e3c81bae/m');
  });

  test.each([
    ['empty', ''],
    ['single-level wildcard', 'a/+/b'],
    ['multi-level wildcard', '#'],
    ['wildcard inside a level', 'a#'],
    ['trailing empty level', 'relay/'],
    ['leading empty level', '/relay'],
    ['empty middle level', 'a//b'],
    ['broker-reserved $', '$SYS'],
    ['NUL', 'a\u0000b'],
    ['too long', 'x'.repeat(1025)],
  ])('prefix refused: %s', (_name, prefix) => {
    expect(() => validateTopicPrefix(prefix)).toThrow(ConfigError);
    expect(() => keysTopic(prefix, uid)).toThrow(ConfigError);
  });

  test('parseTopic recognises exactly our three shapes', () => {
    const t = topicIdForGroup(asGroupId(seed(3)));
    expect(parseTopic('relay', keysTopic('relay', uid))).toEqual({ kind: 'keys', userId: uid });
    expect(parseTopic('relay', inboxTopic('relay', uid))).toEqual({ kind: 'inbox', userId: uid });
    expect(parseTopic('relay', groupTopic('relay', t))).toEqual({ kind: 'group', topicId: t });
    for (const other of [
      'relay/u/cfb251f2b123ab140c92a4f5c3860593/keys/x',
      'relay/u/CFB251F2B123AB140C92A4F5C3860593/keys',
      'relay/u/cfb251f2b123ab140c92a4f5c38605/keys',
      'relay/g/cfb251f2b123ab140c92a4f5c3860593/keys',
      'relay/u/cfb251f2b123ab140c92a4f5c3860593/m',
      'other/u/cfb251f2b123ab140c92a4f5c3860593/keys',
      'relayx/u/cfb251f2b123ab140c92a4f5c3860593/keys',
    ]) {
      expect(parseTopic('relay', other)).toBeUndefined();
    }
  });

  test('topicParser checks the prefix once and parses as parseTopic does', () => {
    expect(() => topicParser('a/+')).toThrow(ConfigError);
    const parse = topicParser('relay');
    const t = topicIdForGroup(asGroupId(seed(3)));
    for (const topic of [
      keysTopic('relay', uid),
      inboxTopic('relay', uid),
      groupTopic('relay', t),
      'relay/g/cfb251f2b123ab140c92a4f5c3860593/keys',
      'relayx/u/cfb251f2b123ab140c92a4f5c3860593/keys',
    ]) {
      expect(parse(topic)).toEqual(parseTopic('relay', topic));
    }
  });
});
