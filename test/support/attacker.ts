/**
 * Helpers for hostile-input tests: craft inbox envelopes and key bundles from the framework's public
 * building blocks and put raw bytes on the broker. Nothing here reaches into a client's internals;
 * a "forger" that speaks for a real peer does so through that peer's own RelayStore.
 */
import { randomBytes } from 'node:crypto';
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeInnerPayload,
  encodeKeyBundle,
  leadingZeroBits,
  MSG_TYPE,
  MqttTransport,
  mineSync,
  powChallenge,
  powHash,
  seal,
  signKeyBundle,
  verifyPow,
  asPowBits,
  asUnixSeconds,
  encodeContent,
  mls,
  type Identity,
  type InboundMessage,
  type InnerPayload,
  type KeyBundle,
  type RelayStore,
  type SealedEnvelope,
  type UnixSeconds,
  type UserId,
} from '../../framework/relay/index.js';
import { uniqueName } from './broker.js';

export const nowSeconds = (): UnixSeconds => asUnixSeconds(Math.floor(Date.now() / 1000));

// ---------------------------------------------------------------------------------------------------
// Raw MQTT

/**
 * One MQTT connection for the attacker: publishes arbitrary bytes (its own payload limit is raised
 * to 1 MiB so oversize envelopes reach the broker) and records what arrives on topics it watches.
 * Subscriptions use No Local, so its own publications are not recorded.
 */
export class RawMqtt {
  private readonly seen: InboundMessage[] = [];
  private readonly waiters: Array<() => void> = [];

  private constructor(private readonly transport: MqttTransport) {}

  static async connect(url: string): Promise<RawMqtt> {
    const transport = new MqttTransport({
      url,
      clientId: uniqueName('attacker'),
      sessionExpirySeconds: 0,
      maxPayloadBytes: 1024 * 1024,
    });
    const raw = new RawMqtt(transport);
    transport.onMessage(async (m) => {
      raw.seen.push(m);
      for (const w of raw.waiters.splice(0)) w();
    });
    await transport.connect();
    return raw;
  }

  async watch(topic: string): Promise<void> {
    await this.transport.subscribe(topic, { qos: 1, noLocal: true });
  }

  /** Payloads seen so far on `topic`, in arrival order (retained ones included). */
  captured(topic: string): Uint8Array[] {
    return this.seen.filter((m) => m.topic === topic && m.payload.length > 0).map((m) => m.payload);
  }

  /** Resolves with the n-th (1-based) non-empty payload seen on `topic`. */
  async nth(topic: string, n: number, timeoutMs = 20_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.captured(topic);
      if (got.length >= n) return got[n - 1]!;
      if (Date.now() > deadline) throw new Error(`only ${got.length} payloads on ${topic}, wanted ${n}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** QoS 1 unless told otherwise; a QoS 0 publish resolves once the packet is written. */
  publish(topic: string, payload: Uint8Array, opts: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    return this.transport.publish(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false });
  }

  /** Clears a retained topic (an empty retained payload). */
  clearRetained(topic: string): Promise<void> {
    return this.publish(topic, new Uint8Array(0), { retain: true });
  }

  close(): Promise<void> {
    return this.transport.end();
  }
}

// ---------------------------------------------------------------------------------------------------
// Envelopes

export interface Recipient {
  userId: UserId;
  sealPublic: Uint8Array;
}

/** InnerPayload for an MLS message (msg_type 5) with the given sender fields. */
export function messageInner(
  sender: { userId: UserId; signingPublic: Uint8Array },
  mlsMessage: Uint8Array,
): InnerPayload {
  return {
    msgType: MSG_TYPE.message,
    senderId: sender.userId,
    senderIdentityKey: sender.signingPublic,
    mls: mlsMessage,
  };
}

/** HPKE-seals an InnerPayload to the recipient exactly as a sender would (hint optional). */
export async function sealInner(
  to: Recipient,
  inner: InnerPayload,
  sentAt: UnixSeconds,
  hint?: Uint8Array,
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array; sentAt: UnixSeconds }> {
  const sealed = await seal({
    recipientId: to.userId,
    recipientSealKey: to.sealPublic,
    plaintext: encodeInnerPayload(inner),
    sentAt,
    ...(hint ? { hint } : {}),
  });
  return { ...sealed, sentAt };
}

/**
 * A nonce >= start with at least `bits` leading zero bits for this recipient's challenge (a start of
 * 2^32 fixes the nonce's CBOR width at 9 bytes, for envelopes of an exact size).
 */
export function mineFor(
  recipientId: UserId,
  e: { enc: Uint8Array; ciphertext: Uint8Array; sentAt: UnixSeconds },
  bits: number,
  start = 0n,
): bigint {
  const nonce = mineSync(powChallenge(recipientId, e.sentAt, e.enc, e.ciphertext), bits, start);
  if (nonce === undefined) throw new Error('mining failed');
  return nonce;
}

/** A nonce whose hash has exactly `bits` leading zero bits (so it fails at bits + 1). */
export function nonceWithExactBits(challenge: Uint8Array, bits: number): bigint {
  let start = 0n;
  for (;;) {
    const nonce = mineSync(challenge, bits, start);
    if (nonce === undefined) throw new Error('mining failed');
    if (leadingZeroBits(powHash(challenge, nonce)) === bits) return nonce;
    start = nonce + 1n;
  }
}

/** The smallest nonce >= 0 that does NOT satisfy `bits` for this challenge. */
export function invalidNonce(challenge: Uint8Array, bits: number): bigint {
  let n = 0n;
  while (verifyPow(challenge, n, bits)) n++;
  return n;
}

/**
 * An envelope that costs its sender nothing: random enc and ciphertext of a plausible size, a
 * current sent_at, and a nonce that fails the recipient's `bits`.
 */
export function invalidPowEnvelope(recipientId: UserId, bits: number, sentAt = nowSeconds()): Uint8Array {
  const e = { enc: randomBytes(32), ciphertext: randomBytes(240), sentAt };
  const powNonce = invalidNonce(powChallenge(recipientId, sentAt, e.enc, e.ciphertext), bits);
  return encodeEnvelope({ ...e, powNonce });
}

/** Seal + mine + encode: a PoW envelope a well-behaved first-contact sender would publish. */
export async function powEnvelope(
  to: Recipient,
  inner: InnerPayload,
  bits: number,
  sentAt: UnixSeconds = nowSeconds(),
): Promise<{ bytes: Uint8Array; envelope: SealedEnvelope }> {
  const sealed = await sealInner(to, inner, sentAt);
  const envelope: SealedEnvelope = { ...sealed, powNonce: mineFor(to.userId, sealed, bits) };
  return { bytes: encodeEnvelope(envelope), envelope };
}

export { decodeEnvelope };

// ---------------------------------------------------------------------------------------------------
// Hand-written CBOR, for encodings the framework's encoder refuses to produce

type CborValue = number | bigint | Uint8Array;

function cborHead(major: number, n: number | bigint): Uint8Array {
  const v = BigInt(n);
  const m = major << 5;
  if (v < 24n) return Uint8Array.of(m | Number(v));
  if (v < 0x100n) return Uint8Array.of(m | 24, Number(v));
  if (v < 0x10000n) return Uint8Array.of(m | 25, Number(v >> 8n), Number(v & 0xffn));
  if (v < 0x1_0000_0000n) {
    const b = new Uint8Array(5);
    b[0] = m | 26;
    new DataView(b.buffer).setUint32(1, Number(v));
    return b;
  }
  const b = new Uint8Array(9);
  b[0] = m | 27;
  new DataView(b.buffer).setBigUint64(1, v);
  return b;
}

/**
 * A CBOR map with unsigned-integer keys, written in the given order and with the given entries,
 * duplicates included. Values: unsigned integers (number/bigint) or byte strings.
 */
export function cborMap(entries: Array<[number, CborValue]>): Uint8Array {
  const parts: Uint8Array[] = [cborHead(5, entries.length)];
  for (const [k, v] of entries) {
    parts.push(cborHead(0, k));
    if (v instanceof Uint8Array) parts.push(cborHead(2, v.length), v);
    else parts.push(cborHead(0, v));
  }
  return Buffer.concat(parts);
}

/** The entries of a SealedEnvelope in deterministic order (keys 0, 1, 2, 3, [4], 6). */
export function envelopeEntries(e: SealedEnvelope): Array<[number, CborValue]> {
  const out: Array<[number, CborValue]> = [
    [0, 1],
    [1, e.enc],
    [2, e.ciphertext],
    [3, e.powNonce],
  ];
  if (e.access) out.push([4, Buffer.concat([e.access.hint, e.access.tag])]);
  out.push([6, e.sentAt]);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Speaking as a real peer, through that peer's own store

/**
 * Produces genuine MLS application messages in `peerStore`'s session with `victimHex`, as the peer
 * client would, and writes the advanced ratchet state back so the peer client stays consistent.
 * Use only while the peer client itself is not sending.
 */
export class SessionForger {
  constructor(
    private readonly ctx: mls.MlsContext,
    private readonly peerStore: RelayStore,
    private readonly victimHex: string,
  ) {}

  async applicationMessage(text: string): Promise<Uint8Array> {
    const session = await this.peerStore.getSessionByPeer(this.victimHex);
    if (!session) throw new Error('the peer has no session with the victim');
    const state = mls.decodeSession(session.state);
    const encrypted = await mls.encryptApplication(this.ctx, state, encodeContent({ content: text }));
    await this.peerStore.commit({
      conversations: [
        {
          ...session,
          kind: 'direct',
          state: mls.encodeSession(encrypted.state),
          messagesSinceCommit: session.messagesSinceCommit + 1,
        },
      ],
    });
    return encrypted.message;
  }
}

// ---------------------------------------------------------------------------------------------------
// Key bundles

/** A signed KeyBundle for `identity` with a KeyPackage generated as of `kpNow`. */
export async function signedBundle(
  ctx: mls.MlsContext,
  identity: Identity,
  opts: { issuedAt: number; kpNow?: number; powBits?: number },
): Promise<KeyBundle> {
  const kp = await mls.generateKeyPackage(ctx, identity, opts.kpNow ?? opts.issuedAt);
  return signKeyBundle(
    {
      keyPackage: kp.keyPackage,
      sealedSenderKey: identity.sealPublic,
      issuedAt: asUnixSeconds(opts.issuedAt),
      powBits: asPowBits(opts.powBits ?? 18),
    },
    identity,
  );
}

export { encodeKeyBundle };
