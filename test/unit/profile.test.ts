/**
 * The signed profile (PROTOCOL.md §4 key 7, §8): its JSON codec and 8 KiB bound, its place in the
 * KeyBundle (covered by the signature; malformed or oversized → the bundle is rejected like any bad
 * bundle), and the bot layer's profile built from decorator metadata.
 */
import { encode, rfc8949EncodeOptions } from 'cborg';
import { Bot, botProfile, OnCommand, scanBots } from '../../framework/bot/index.js';
import { asPowBits, asUnixSeconds } from '../../framework/relay/brand.js';
import { concatBytes, utf8 } from '../../framework/relay/bytes.js';
import {
  decodeKeyBundle,
  encodeKeyBundle,
  MAX_KEY_BUNDLE_BYTES,
  signKeyBundle,
  verifyKeyBundle,
  type KeyPackageVerifier,
  type UnsignedKeyBundle,
} from '../../framework/relay/bundle.js';
import { ArgumentError, CodecError, ConfigError, VerificationError } from '../../framework/relay/errors.js';
import { credentialIdentity, ed25519Sign, identityFromSecrets } from '../../framework/relay/identity.js';
import {
  decodeProfile,
  encodeProfile,
  formatProfile,
  MAX_PROFILE_BYTES,
  parseProfile,
  type Profile,
} from '../../framework/relay/profile.js';

const alice = identityFromSecrets(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
const NOW = asUnixSeconds(1_795_840_000);

/**
 * DANGEROUS test double: accepts any KeyPackage bytes as Alice's, skipping RFC 9420 §10.1. Only for
 * the profile rules around the real signature check (the integration test uses real KeyPackages).
 */
const unsafeAcceptingVerifier: KeyPackageVerifier = {
  verifyKeyPackage: () =>
    Promise.resolve({
      identityKey: alice.signingPublic,
      credentialIdentity: credentialIdentity(alice.userId),
    }),
};

const fields = (profile?: Profile): UnsignedKeyBundle => ({
  keyPackage: new Uint8Array([0, 1, 0, 2, 0, 3, 0, 4]),
  sealedSenderKey: alice.sealPublic,
  issuedAt: NOW,
  powBits: asPowBits(18),
  ...(profile !== undefined ? { profile } : {}),
});

const verify = (bytes: Uint8Array) =>
  verifyKeyBundle(bytes, alice.userId, { now: NOW, verifier: unsafeAcceptingVerifier });

/** A bundle with key 7 = `profileText`, signed correctly by hand: only the profile can be wrong. */
function handSigned(profileText: string): Uint8Array {
  const entries: Array<[number, unknown]> = [
    [0, 1],
    [1, new Uint8Array([0, 1, 0, 2, 0, 3, 0, 4])],
    [2, alice.sealPublic],
    [3, NOW],
    [4, 18],
    [7, profileText],
  ];
  const withoutSig = encode(new Map(entries), rfc8949EncodeOptions);
  const sig = ed25519Sign(alice.signingSeed, concatBytes(utf8('relay-bundle-v1'), withoutSig));
  return encode(new Map([...entries, [5, sig]]), rfc8949EncodeOptions);
}

/** A profile whose JSON is exactly `bytes` long. */
function profileOfSize(bytes: number): Profile {
  const base = formatProfile({ bot: true, description: '', commands: [] }).length;
  return { bot: true, description: 'd'.repeat(bytes - base), commands: [] };
}

const menu: Profile = {
  bot: true,
  description: 'Reminds you of things',
  commands: [{ name: 'remind', args: '<minutes:int> <text…>', description: 'later' }, { name: 'help' }],
};

describe('profile JSON', () => {
  test('fixed field order; round trip; unknown fields ignored; bot defaults to false', () => {
    expect(formatProfile(menu)).toBe(
      '{"bot":true,"description":"Reminds you of things","commands":[{"name":"remind","args":"<minutes:int> <text…>","description":"later"},{"name":"help"}]}',
    );
    expect(decodeProfile(encodeProfile(menu))).toEqual(menu);
    expect(parseProfile('{"bot":true,"avatar":"x","commands":[{"name":"a","icon":1}]}')).toEqual({
      bot: true,
      commands: [{ name: 'a' }],
    });
    expect(parseProfile('{}')).toEqual({ bot: false, commands: [] });
  });

  test('8 KiB: accepted at the bound, refused one byte past it', () => {
    expect(encodeProfile(profileOfSize(MAX_PROFILE_BYTES)).length).toBe(MAX_PROFILE_BYTES);
    expect(() => encodeProfile(profileOfSize(MAX_PROFILE_BYTES + 1))).toThrow(ArgumentError);
    expect(() => decodeProfile(utf8(formatProfile(profileOfSize(MAX_PROFILE_BYTES)) + ' '))).toThrow(
      CodecError,
    );
  });

  test.each([
    ['not JSON', '{"bot":'],
    ['not an object', '[1]'],
    ['bot not a boolean', '{"bot":"yes"}'],
    ['description not a string', '{"description":1}'],
    ['commands not a list', '{"commands":{}}'],
    ['a command not an object', '{"commands":["help"]}'],
    ['a command without a name', '{"commands":[{"args":"<x>"}]}'],
    ['a command with an empty name', '{"commands":[{"name":""}]}'],
    ['args not a string', '{"commands":[{"name":"a","args":["<x>"]}]}'],
  ])('malformed: %s', (_why, text) => {
    expect(() => parseProfile(text)).toThrow(CodecError);
  });
});

describe('profile in the KeyBundle (key 7)', () => {
  test('carried as key 7 text after the display name, and covered by the signature', async () => {
    const b = signKeyBundle(fields(menu), alice);
    const bytes = encodeKeyBundle(b);
    // Key 7 is the last entry: 0x07, a CBOR text header (0x78 = one length byte), the JSON bytes.
    const json = Buffer.from(formatProfile(menu));
    expect(json.length).toBeLessThan(256);
    const tail = '07' + '78' + json.length.toString(16).padStart(2, '0') + json.toString('hex');
    expect(Buffer.from(bytes).toString('hex').endsWith(tail)).toBe(true);
    expect(decodeKeyBundle(bytes).profile).toEqual(menu);
    expect((await verify(bytes)).bundle.profile).toEqual(menu);
    const tampered = encodeKeyBundle({ ...b, profile: { ...menu, description: 'Steals your keys' } });
    await expect(verify(tampered)).rejects.toThrow(VerificationError);
    const stripped = encodeKeyBundle({ ...b, profile: undefined });
    await expect(verify(stripped)).rejects.toThrow(VerificationError);
  });

  test('a profile of exactly 8 KiB fits a bundle with the largest KeyPackage', async () => {
    const big = fields(profileOfSize(MAX_PROFILE_BYTES));
    const bytes = encodeKeyBundle(signKeyBundle({ ...big, keyPackage: new Uint8Array(16 * 1024) }, alice));
    expect(bytes.length).toBeLessThanOrEqual(MAX_KEY_BUNDLE_BYTES);
    expect(
      (await verify(encodeKeyBundle(signKeyBundle(big, alice)))).bundle.profile?.description,
    ).toHaveLength(MAX_PROFILE_BYTES - 43);
  });

  test('a correctly signed bundle whose profile is malformed or over 8 KiB is rejected (CodecError)', async () => {
    expect((await verify(handSigned(formatProfile(menu)))).bundle.profile).toEqual(menu);
    await expect(verify(handSigned('{"bot":"yes"}'))).rejects.toThrow(CodecError);
    await expect(verify(handSigned('not json'))).rejects.toThrow(CodecError);
    await expect(verify(handSigned(formatProfile(profileOfSize(MAX_PROFILE_BYTES)) + ' '))).rejects.toThrow(
      /longer than 8192 bytes/,
    );
  });
});

describe('a bot profile from decorator metadata', () => {
  @Bot({ name: 'Reminder', description: 'Reminds you of things' })
  class Reminder {
    @OnCommand('remind', { aliases: ['r'], args: '<minutes:int> <text...>', description: 'later' })
    remind(): string {
      return 'ok';
    }

    @OnCommand('ping')
    ping(): string {
      return 'pong';
    }
  }

  test('description, each command once with its args spec as /help shows it, the built-in /help last', () => {
    const profile = botProfile(scanBots(new Reminder()));
    expect(profile).toEqual({
      bot: true,
      description: 'Reminds you of things',
      commands: [
        { name: 'remind', args: '<minutes:int> <text…>', description: 'later' },
        { name: 'ping' },
        { name: 'help', args: '[command]', description: 'this list; /help <command> shows how to use one' },
      ],
    });
    expect(parseProfile(formatProfile(profile))).toEqual(profile);
  });

  test('a profile over 8 KiB is a ConfigError naming the descriptions', () => {
    @Bot({ name: 'Verbose', description: 'x'.repeat(MAX_PROFILE_BYTES) })
    class Verbose {
      @OnCommand('a')
      a(): void {}
    }
    expect(() => botProfile(scanBots(new Verbose()))).toThrow(ConfigError);
    expect(() => botProfile(scanBots(new Verbose()))).toThrow(/@Bot and @OnCommand descriptions/);
  });
});
