/**
 * Fuzz targets: every decoder that takes network bytes, and the inbound pipeline. A target throws
 * only our typed errors (RelayError and its subclasses) on bad input; anything else is a finding.
 * Decoders that accept an input must also round-trip it: what we decode we can re-encode, and the
 * re-encoding decodes to the same value (a decoder laxer than its encoder is a finding too).
 */
import { randomBytes } from 'node:crypto';
import {
  MSG_TYPE,
  RelayError,
  decodeContent,
  decodeEnvelope,
  decodeGroupPayload,
  decodeInnerPayload,
  decodeKeyBundle,
  encodeContent,
  encodeEnvelope,
  encodeGroupPayload,
  encodeInnerPayload,
  encodeKeyBundle,
  generateIdentity,
  mls,
  signRejoin,
  signSealedSenderKey,
  type InnerPayload,
  type UnixSeconds,
} from '../../framework/relay/index.js';
import { decodeTreeBytes, decodeWelcomeMessage } from '../../framework/relay/mls/engine.js';
import { decodeKeyPackageMessage } from '../../framework/relay/mls/keypackage.js';
import { decodePrivateMessage } from '../../framework/relay/mls/sender.js';
import { assertTreeBounds, welcomeTreeLimits } from '../../framework/relay/mls/tree-bounds.js';
import { signedBundle } from '../support/attacker.js';
import { startPipeline, type Pipeline } from './pipeline.js';

export interface FuzzTarget {
  readonly name: string;
  /** Largest input the mutator produces. */
  readonly maxLength: number;
  /** Tokens the mutator inserts (CBOR heads, JSON syntax…). */
  readonly dictionary: readonly Uint8Array[];
  /** Valid inputs to start from (the checked-in corpus is added to these). */
  seeds(): Promise<Uint8Array[]>;
  /** Runs one input; returns a short outcome label (for outcome-guided corpus growth). */
  run(input: Uint8Array): string | Promise<string>;
  close?(): Promise<void>;
}

/** A finding: the input made the target throw something other than our typed errors. */
export function isExpected(e: unknown): boolean {
  return e instanceof RelayError;
}

/** Outcome label of a typed error: class and message with numbers blanked, so lengths do not count. */
export function outcomeOf(e: RelayError): string {
  // Numbers and quoted input (JSON.parse quotes what it read) would make every input "new".
  const blank = (m: string) =>
    m
      .replace(/"[^"]*"|'[^']*'/g, 'Q')
      .replace(/[0-9]+/g, '#')
      .slice(0, 96);
  // Our decoders wrap ts-mls's failures: the cause tells one wrapped failure from another.
  // Only its start: JSON.parse and others quote the input they stumbled on.
  const cause = e.cause instanceof Error ? `<${e.cause.name}:${blank(e.cause.message).slice(0, 20)}` : '';
  return `${e.name}:${blank(e.message)}${cause}`;
}

function sameJson(a: unknown, b: unknown): void {
  const show = (v: unknown) =>
    JSON.stringify(v, (_k, x: unknown) =>
      typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x,
    );
  if (show(a) !== show(b)) throw new Error(`round trip changed the value: ${show(a)} vs ${show(b)}`);
}

const u8 = (...b: number[]) => Uint8Array.of(...b);
const text = (s: string) => new TextEncoder().encode(s);

/** CBOR heads at length boundaries, indefinite lengths, tags, floats, simple values, break. */
const CBOR_TOKENS: Uint8Array[] = [
  u8(0x18, 0x18),
  u8(0x19, 0x01, 0x00),
  u8(0x1a, 0xff, 0xff, 0xff, 0xff),
  u8(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  u8(0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  u8(0x58, 0x20),
  u8(0x59, 0xff, 0xff),
  u8(0x5a, 0x7f, 0xff, 0xff, 0xff),
  u8(0x5f),
  u8(0x7f),
  u8(0x9f),
  u8(0xbf),
  u8(0xff),
  u8(0xa0),
  u8(0x80),
  u8(0x40),
  u8(0x60),
  u8(0xc0),
  u8(0xc2, 0x41, 0x01),
  u8(0xd9, 0xd9, 0xf7),
  u8(0xf4),
  u8(0xf5),
  u8(0xf6),
  u8(0xf7),
  u8(0xf9, 0x7e, 0x00),
  u8(0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0),
  u8(0xa1, 0x00, 0x01),
  u8(0xa1, 0x08, 0x40),
  u8(0x1c),
  u8(0x7b, 0, 0, 0, 0, 0, 0, 0, 1),
];

/** MLS varints at boundaries, wire formats, node types, optional flags. */
const MLS_TOKENS: Uint8Array[] = [
  u8(0x00, 0x01),
  u8(0x00, 0x02),
  u8(0x00, 0x03),
  u8(0x00, 0x04),
  u8(0x00, 0x05),
  u8(0x3f),
  u8(0x40, 0x40),
  u8(0x7f, 0xff),
  u8(0x80, 0x00, 0x40, 0x00),
  u8(0xbf, 0xff, 0xff, 0xff),
  u8(0xc0),
  u8(0x01),
  u8(0x02),
  u8(0x00, 0x00, 0x00, 0x00),
  u8(0xff, 0xff, 0xff, 0xff),
  u8(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01),
];

const JSON_TOKENS: Uint8Array[] = [
  '{',
  '}',
  '[',
  ']',
  '"',
  ':',
  ',',
  '\\',
  '\\u0000',
  '\\ud800',
  '"content":',
  '"type":',
  '"id":',
  '"reply_to":',
  '"__proto__":',
  '"constructor":',
  'null',
  'true',
  '1e999',
  '-0',
  '9007199254740993',
  '[[[[[[[[',
  '{"a":{"a":',
  '\u202e',
  '\u0000',
  '\xff',
].map(text);

function decoderTarget(
  name: string,
  maxLength: number,
  dictionary: readonly Uint8Array[],
  seeds: () => Promise<Uint8Array[]>,
  roundTrip: (input: Uint8Array) => string | void,
): FuzzTarget {
  return {
    name,
    maxLength,
    dictionary,
    seeds,
    run(input) {
      try {
        return `ok:${roundTrip(input) ?? ''}`;
      } catch (e) {
        if (e instanceof RelayError) return outcomeOf(e);
        throw e;
      }
    },
  };
}

interface MlsSamples {
  keyPackage: Uint8Array;
  welcome: Uint8Array;
  tree: Uint8Array;
  groupWelcome: Uint8Array;
  groupTree: Uint8Array;
  messages: Uint8Array[];
}

let samples: Promise<MlsSamples> | undefined;

/** Genuine MLS bytes: a 1:1 session with two messages and a 4-member group. */
function mlsSamples(): Promise<MlsSamples> {
  samples ??= (async () => {
    const ctx = await mls.createMlsContext();
    const now = Math.floor(Date.now() / 1000);
    const alice = generateIdentity();
    const bob = generateIdentity();
    const kp = await mls.generateKeyPackage(ctx, bob, now);
    const created = await mls.createOneToOne(ctx, alice, kp.keyPackage, { now });
    const m1 = await mls.encryptApplication(ctx, created.state, encodeContent({ content: 'hello' }));
    const m2 = await mls.encryptApplication(ctx, m1.state, encodeContent({ content: '/ping', id: 'x1' }));
    const group = await mls.createGroup(ctx, alice, { now });
    const kps = await Promise.all([1, 2, 3].map(() => mls.generateKeyPackage(ctx, generateIdentity(), now)));
    const commit = await mls.commitGroup(ctx, group.state, { adds: kps.map((k) => k.keyPackage), now });
    return {
      keyPackage: kp.keyPackage,
      welcome: created.welcome,
      tree: created.ratchetTree,
      groupWelcome: commit.welcome!,
      groupTree: commit.ratchetTree,
      messages: [m1.message, m2.message, commit.commit],
    };
  })();
  return samples;
}

async function innerSeeds(): Promise<InnerPayload[]> {
  const s = await mlsSamples();
  const id = generateIdentity();
  const base = { senderId: id.userId, senderIdentityKey: id.signingPublic };
  const sskey = { sealedSenderKey: id.sealPublic, sealedSenderKeySignature: signSealedSenderKey(id) };
  const groupId = new Uint8Array(randomBytes(32));
  return [
    { ...base, msgType: MSG_TYPE.message, mls: s.messages[0]! },
    { ...base, ...sskey, msgType: MSG_TYPE.message, mls: s.messages[1]! },
    { ...base, ...sskey, msgType: MSG_TYPE.welcome, mls: s.welcome, ratchetTree: s.tree },
    {
      ...base,
      ...sskey,
      msgType: MSG_TYPE.groupWelcome,
      mls: s.groupWelcome,
      ratchetTree: s.groupTree,
      groupName: 'g',
    },
    {
      ...base,
      msgType: MSG_TYPE.groupRejoin,
      mls: s.keyPackage,
      groupId,
      rejoinEpoch: 3n,
      rejoinSignature: signRejoin(id, {
        groupId,
        epoch: 3n,
        keyPackage: s.keyPackage,
        sentAt: 1_800_000_000,
      }),
    },
  ];
}

function envelopeSeeds(): Promise<Uint8Array[]> {
  const sentAt = Math.floor(Date.now() / 1000) as UnixSeconds;
  const rnd = (n: number) => new Uint8Array(randomBytes(n));
  return Promise.resolve([
    encodeEnvelope({ enc: rnd(32), ciphertext: rnd(272), powNonce: 123456n, sentAt }),
    encodeEnvelope({
      enc: rnd(32),
      ciphertext: rnd(528),
      powNonce: 0n,
      sentAt,
      access: { hint: rnd(4), tag: rnd(16) },
    }),
  ]);
}

export function decoderTargets(): FuzzTarget[] {
  return [
    decoderTarget('envelope', 4096, CBOR_TOKENS, envelopeSeeds, (b) => {
      const v = decodeEnvelope(b);
      sameJson(decodeEnvelope(encodeEnvelope(v)), v);
    }),
    decoderTarget(
      'inner-payload',
      8192,
      CBOR_TOKENS,
      async () => (await innerSeeds()).map(encodeInnerPayload),
      (b) => {
        const v = decodeInnerPayload(b);
        sameJson(decodeInnerPayload(encodeInnerPayload(v)), v);
        return Object.keys(v).sort().join(',') + v.msgType;
      },
    ),
    decoderTarget(
      'group-payload',
      4096,
      CBOR_TOKENS,
      async () => (await mlsSamples()).messages.map(encodeGroupPayload),
      (b) => {
        const v = decodeGroupPayload(b);
        sameJson(decodeGroupPayload(encodeGroupPayload(v)), v);
      },
    ),
    decoderTarget(
      'key-bundle',
      4096,
      CBOR_TOKENS,
      async () => {
        const ctx = await mls.createMlsContext();
        const now = Math.floor(Date.now() / 1000);
        const b = await signedBundle(ctx, generateIdentity(), { issuedAt: now });
        return [encodeKeyBundle(b), encodeKeyBundle({ ...b, displayName: 'Relay bot ✓' })];
      },
      (b) => {
        const v = decodeKeyBundle(b);
        sameJson(decodeKeyBundle(encodeKeyBundle(v)), v);
      },
    ),
    decoderTarget(
      'content',
      2048,
      JSON_TOKENS,
      () =>
        Promise.resolve([
          encodeContent({ content: 'hello' }),
          encodeContent({ content: '/echo hi', id: 'm1', replyTo: 'm0', type: 'text' }),
          text('{"content":"x","type":"reaction","reply_to":"a","remove":true,"pad":"    "}'),
          // One of each §8 type with fields of its own, so mutations reach every field check.
          text('{"type":"typing","state":"start"}'),
          text('{"type":"stream","id":"s","seq":3,"content":"x","done":false}'),
          text('{"type":"task","id":"t","reply_to":"m","state":"working","content":"","progress":0.5}'),
          text('{"type":"actions","content":"p","actions":[{"id":"a","label":"A"},{"id":"b","label":"B"}]}'),
          text(
            '{"type":"attachment","name":"f","mime":"x/y","size":3,"sha256":"98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4","data":"aGkK"}',
          ),
          text(
            '{"type":"attachment","name":"f","mime":"x/y","size":9,"sha256":"' +
              '00'.repeat(32) +
              '","url":"https://x.example/f","key":"' +
              'A'.repeat(43) +
              '=","nonce":"' +
              'A'.repeat(16) +
              '"}',
          ),
        ]),
      (b) => {
        const v = decodeContent(b);
        const again = decodeContent(encodeContent(v));
        sameJson({ ...again, type: again.type }, { ...v, type: v.type });
        return Object.keys(v).sort().join(',');
      },
    ),
    decoderTarget(
      'mls-framing',
      8192,
      MLS_TOKENS,
      async () => {
        const s = await mlsSamples();
        return [
          ...s.messages.map((m) => Uint8Array.of(0, ...m)),
          Uint8Array.of(1, ...s.keyPackage),
          Uint8Array.of(2, ...s.welcome),
          Uint8Array.of(3, ...s.tree),
          Uint8Array.of(3, ...s.groupTree),
        ];
      },
      (b) => {
        // First byte picks the decoder, so one corpus feeds all four and splices cross between them.
        const body = b.subarray(1);
        switch ((b[0] ?? 0) & 3) {
          case 0:
            decodePrivateMessage(body);
            return `message:${mls.peekHeader(body).contentType}`;
          case 1:
            return `key-package:${decodeKeyPackageMessage(body).leafNode.extensions.length}`;
          case 2:
            return `welcome:${decodeWelcomeMessage(body).secrets.length}`;
          default:
            assertTreeBounds(decodeTreeBytes(body), welcomeTreeLimits(250, 2047));
            return 'tree';
        }
      },
    ),
  ];
}

/**
 * The inbound pipeline of a RelayClient with a fixed identity: bytes in, a drop reason or a message
 * out (see pipeline.ts). The first byte mod 3 picks the way in: the MQTT payload of the inbox; an
 * InnerPayload plaintext that the harness seals to the client, so mutations reach the checks behind
 * HPKE (sender binding, Welcome and MLS processing); or a payload on the topic of a group the client
 * is in (GroupPayload, MLS group processing).
 */
export function pipelineTarget(): FuzzTarget {
  let pipeline: Pipeline | undefined;
  return {
    name: 'pipeline',
    maxLength: 16384,
    dictionary: [...CBOR_TOKENS, ...MLS_TOKENS],
    async seeds() {
      pipeline = await startPipeline();
      const inners = [...(await innerSeeds()), ...(await pipeline.genuineInners())];
      return [
        ...(await envelopeSeeds()).map((e) => Uint8Array.of(0, ...e)),
        ...inners.map((i) => Uint8Array.of(1, ...encodeInnerPayload(i))),
        ...pipeline.groupPayloads.map((g) => Uint8Array.of(2, ...g)),
      ];
    },
    run(input) {
      if (!pipeline) throw new Error('pipeline not started');
      const body = input.subarray(1);
      switch ((input[0] ?? 0) % 3) {
        case 0:
          return pipeline.deliver(body);
        case 1:
          return pipeline.sealAndDeliver(body);
        default:
          return pipeline.deliverToGroup(body);
      }
    },
    async close() {
      await pipeline?.close();
    },
  };
}
