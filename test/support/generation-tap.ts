/**
 * A wire tap that names the MLS ratchet generation of every message one sender publishes to some
 * receivers (PROTOCOL.md §8: "a generation must never be used twice, not even after a crash").
 *
 * It listens on the receivers' inbox topics and on group topics with its own MQTT client (a
 * non-shared subscription gets its own copy of every publish), and decrypts what the receivers
 * could: the envelope with the receiver's sealed-sender secret, then only the MLS SenderData
 * (RFC 9420 §6.3.2) under the epoch's sender_data_secret read from the receiver's own stored state.
 * That yields (conversation, sender leaf, epoch, ratchet, generation) per publish, without touching
 * any ratchet. Two publishes with the same key are either the same bytes (an outbox replay, which
 * the receiver drops as a replay or duplicate) or a generation used twice.
 *
 * The receiver's state may lag a publish by a commit (it processes the same message concurrently),
 * so a message from an epoch the state does not have yet waits and is tried again.
 */
import { createHash } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { decryptSenderData } from 'ts-mls/privateMessage.js';
import type { GroupId, UnixSeconds } from '../../framework/relay/brand.js';
import { fromHex, toHex } from '../../framework/relay/bytes.js';
import { decodeEnvelope, decodeGroupPayload, decodeInnerPayload } from '../../framework/relay/envelope.js';
import { userIdFromHex } from '../../framework/relay/identity.js';
import type { RelayStore } from '../../framework/relay/index.js';
import { MSG_TYPE } from '../../framework/relay/labels.js';
import * as mls from '../../framework/relay/mls/index.js';
import { decodePrivateMessage } from '../../framework/relay/mls/sender.js';
import { unwrap } from '../../framework/relay/mls/state.js';
import { open } from '../../framework/relay/seal.js';
import { groupTopic, inboxTopic, topicIdForGroup } from '../../framework/relay/topics.js';
import { uniqueName } from './broker.js';

/** A receiver whose inbox the tap reads, with the store that holds its keys and sessions. */
export interface TappedReceiver {
  userId: string;
  store: RelayStore;
}

interface Pending {
  where: 'inbox' | 'group';
  /** The inbox's owner, for an inbox publish. */
  receiver?: TappedReceiver;
  payload: Uint8Array;
  tries: number;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export class GenerationTap {
  /** Key `(conversation, leaf, epoch, ratchet, generation)` → digests of the MLS messages seen with it. */
  private readonly seen = new Map<string, Set<string>>();
  private readonly pending: Pending[] = [];
  private groupReader: RelayStore | undefined;
  private draining: Promise<void> = Promise.resolve();
  /** Publishes of the sender that were decoded. */
  decoded = 0;
  /** The same bytes again (outbox replays, QoS 1 redeliveries to the tap). */
  copies = 0;
  /** Publishes the tap could not place: their epoch left every receiver's state before they were tried. */
  unplaced = 0;
  /** Publishes the tap could not read although they came from the sender (a bug in the tap or the wire). */
  readonly failures: string[] = [];

  private constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
    private readonly senderId: string,
    private readonly ctx: mls.MlsContext,
  ) {
    client.on('message', (topic, payload) => {
      const where = topic.endsWith('/inbox') ? 'inbox' : 'group';
      const receiver = this.receivers.get(topic);
      this.pending.push({
        where,
        ...(receiver ? { receiver } : {}),
        payload: new Uint8Array(payload),
        tries: 0,
      });
      this.kick();
    });
  }

  private readonly receivers = new Map<string, TappedReceiver>();

  static async start(brokerUrl: string, prefix: string, senderId: string): Promise<GenerationTap> {
    const client = connect(brokerUrl, {
      protocolVersion: 5,
      clientId: uniqueName('tap'),
      reconnectPeriod: 500,
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    return new GenerationTap(client, prefix, senderId, await mls.createMlsContext());
  }

  /** Reads what `sender` publishes to this receiver's inbox. */
  async tapInbox(receiver: TappedReceiver): Promise<void> {
    const topic = inboxTopic(this.prefix, userIdFromHex(receiver.userId));
    this.receivers.set(topic, receiver);
    await this.client.subscribeAsync(topic, { qos: 1 });
  }

  /** Reads a group's topic; `reader` is the store of a member whose state decrypts it. */
  async tapGroup(groupId: string, reader: RelayStore): Promise<void> {
    this.groupReader = reader;
    const topic = groupTopic(this.prefix, topicIdForGroup(fromHex(groupId) as GroupId));
    await this.client.subscribeAsync(topic, { qos: 1 });
  }

  /** Keys seen with more than one distinct message: generations used twice. */
  reused(): Array<{ key: string; messages: number }> {
    return [...this.seen]
      .filter(([, digests]) => digests.size > 1)
      .map(([key, digests]) => ({ key, messages: digests.size }));
  }

  /** Waits until every publish so far was tried once more; the rest counts as unplaced. */
  async settle(): Promise<void> {
    this.kick();
    await this.draining;
    for (const p of this.pending.splice(0)) if ((await this.place(p)) === 'later') this.unplaced++;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }

  private kick(): void {
    this.draining = this.draining.then(() => this.drain()).catch(() => undefined);
  }

  private async drain(): Promise<void> {
    const batch = this.pending.splice(0);
    for (const p of batch) {
      let placed: 'done' | 'later' | 'ignored';
      try {
        placed = await this.place(p);
      } catch (e) {
        this.failures.push(`${p.where} publish: ${(e as Error).message}`);
        continue;
      }
      if (placed !== 'later') continue;
      // A commit the receiver has not processed yet; tried again on the next publish or settle().
      p.tries++;
      this.pending.push(p);
    }
    if (this.pending.length > 0) setTimeout(() => this.kick(), 100).unref();
  }

  /** Records one publish; 'later' when the receiver's state does not reach its epoch yet. */
  private async place(p: Pending): Promise<'done' | 'later' | 'ignored'> {
    let message: Uint8Array;
    let state: mls.GroupSession | undefined;
    let conversation: string;
    if (p.where === 'inbox') {
      const r = p.receiver!;
      const env = decodeEnvelope(p.payload);
      const identity = (await r.store.loadIdentity())!;
      const inner = decodeInnerPayload(
        await open({
          recipientId: userIdFromHex(r.userId),
          enc: env.enc,
          ciphertext: env.ciphertext,
          sentAt: env.sentAt as UnixSeconds,
          ...(env.access ? { hint: env.access.hint } : {}),
          recipientSealSecret: identity.sealSecret,
        }),
      );
      if (inner.msgType !== MSG_TYPE.message || toHex(inner.senderId) !== this.senderId) return 'ignored';
      message = inner.mls;
      const pm = decodePrivateMessage(message);
      conversation = `direct:${toHex(pm.groupId)}`;
      const record = await r.store.getSession(toHex(pm.groupId));
      state = record && mls.decodeSession(record.state);
    } else {
      message = decodeGroupPayload(p.payload);
      const pm = decodePrivateMessage(message);
      conversation = `group:${toHex(pm.groupId)}`;
      const record = await this.groupReader?.getGroup(toHex(pm.groupId));
      state = record && mls.decodeStoredSession(record.state, record.epochState);
    }
    const pm = decodePrivateMessage(message);
    if (state === undefined) return 'later';
    const group = unwrap(state).group;
    const current = group.groupContext.epoch;
    if (pm.epoch > current) return 'later';
    const secret =
      pm.epoch === current
        ? group.keySchedule.senderDataSecret
        : group.historicalReceiverData.get(pm.epoch)?.senderDataSecret;
    if (secret === undefined) {
      this.unplaced++;
      return 'done';
    }
    const sender = await decryptSenderData(pm, secret, this.ctx.cipherSuite);
    if (sender === undefined) throw new Error('the tap could not read a SenderData the receiver could');
    const node = group.ratchetTree[sender.leafIndex * 2];
    const senderKey = node?.nodeType === 'leaf' ? node.leaf.signaturePublicKey : undefined;
    if (senderKey === undefined || toHex(mls.userIdFromKey(senderKey)) !== this.senderId) return 'ignored';
    const ratchet = pm.contentType === 'application' ? 'application' : 'handshake';
    const key = `${conversation} leaf ${sender.leafIndex} epoch ${pm.epoch} ${ratchet} generation ${sender.generation}`;
    const digests = this.seen.get(key) ?? new Set<string>();
    const digest = sha(message);
    if (digests.has(digest)) this.copies++;
    else this.decoded++;
    digests.add(digest);
    this.seen.set(key, digests);
    return 'done';
  }
}
