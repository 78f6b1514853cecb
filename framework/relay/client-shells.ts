/**
 * Builds a RelayClient's 1:1 and group halves (direct-shell.ts, group-shell.ts) with the contexts
 * they share: the protocol steps' (MLS, our id, clock, random) and sealing's (identity, proof of
 * work, key caches), and loads the secrets those need. Apart from client.ts, which keeps the I/O,
 * timers and events.
 */
import type { EventEmitter } from 'eventemitter3';
import type { Logger } from 'pino';
import type { AccessIndex } from './access.js';
import type { Bundles } from './bundles.js';
import type { RelayClientEvents, RelayClientOptions } from './client-options.js';
import { systemClock, type Clock } from './clock.js';
import type { ConversationStates } from './conversation-states.js';
import type { SealContext } from './direct-seal.js';
import { DirectShell } from './direct-shell.js';
import { GroupShell } from './group-shell.js';
import type { GroupOptions } from './group-types.js';
import { generateIdentity, identityFromSecrets, type Identity } from './identity.js';
import type { KeyedSerialQueue } from './keyed-queue.js';
import * as mls from './mls/index.js';
import type { OutboxPublisher } from './outbox-publisher.js';
import type { OutboxRowCheck } from './outbox-quarantine.js';
import { PowMiner } from './pow.js';
import { systemRandom, type Random } from './random.js';
import { createOpener, SealKeyCache, type Opener } from './seal.js';
import type { StepContext } from './steps/context.js';
import type { RelayStore } from './store.js';
import type { MqttTransport } from './transport.js';
import type { WelcomeQuota } from './welcome-quota.js';
import type { DirectShellDeps } from './direct-outbound.js';

/** What both halves get from the client. */
export interface ClientShellParts {
  identity: Identity;
  mls: mls.MlsContext;
  clock: Clock;
  random: Random;
  prefix: string;
  miner: PowMiner;
  store: RelayStore;
  states: ConversationStates;
  queue: KeyedSerialQueue;
  log: Logger;
  quota: WelcomeQuota;
  bundles: Bundles;
  outbox: OutboxPublisher;
  outboxRowError: OutboxRowCheck;
  accessIndex: AccessIndex;
  transport: MqttTransport;
  maxEnvelopeBytes: number;
  /** Non-committers propose an Update after this many messages in one epoch (PROTOCOL.md §7). */
  updateEveryMessages: number;
  groupOptions: GroupOptions | undefined;
  /** The client: it emits the halves' events. */
  events: Pick<EventEmitter<RelayClientEvents>, 'emit'>;
  onPow(bits: number, seconds: number): void;
  fail(e: unknown): void;
  handler: DirectShellDeps['handler'];
}

/** The client's 1:1 and group halves, wired to each other. */
export function buildShells(p: ClientShellParts): { direct: DirectShell; groups: GroupShell } {
  const stepCtx: StepContext = { mls: p.mls, selfId: p.identity.userId, clock: p.clock, random: p.random };
  const seal: SealContext = {
    identity: p.identity,
    mls: p.mls,
    clock: p.clock,
    random: p.random,
    prefix: p.prefix,
    miner: p.miner,
    accessKeys: new mls.ExporterCache(),
    sealKeys: new SealKeyCache(),
    onPow: p.onPow,
  };
  const shared = {
    store: p.store,
    states: p.states,
    queue: p.queue,
    log: p.log,
    quota: p.quota,
    bundles: p.bundles,
    outbox: p.outbox,
    outboxRowError: p.outboxRowError,
    events: p.events,
    fail: p.fail,
    handler: p.handler,
  };
  const groups = new GroupShell(
    {
      ...shared,
      ctx: { ...stepCtx, seal, updateEveryMessages: p.updateEveryMessages },
      maxEnvelopeBytes: p.maxEnvelopeBytes,
      transport: p.transport,
    },
    p.groupOptions,
  );
  const direct = new DirectShell({
    ...shared,
    ctx: { ...stepCtx, seal },
    accessIndex: p.accessIndex,
    updateEveryMessages: p.updateEveryMessages,
    groups,
  });
  return { direct, groups };
}

/** Our identity's secrets and what is made from them: the MLS context, the opener, the miner. */
export interface ClientSecrets {
  identity: Identity;
  mls: mls.MlsContext;
  opener: Opener;
  miner: PowMiner;
}

/** Loads the identity from the store, creating and saving one on first use. */
export async function loadSecrets(opts: RelayClientOptions): Promise<ClientSecrets> {
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? systemRandom;
  let stored = await opts.store.loadIdentity();
  if (!stored) {
    const fresh = generateIdentity((n) => random.bytes(n));
    stored = { signingSeed: fresh.signingSeed, sealSecret: fresh.sealSecret, createdAt: clock.now() };
    await opts.store.saveIdentity(stored);
  }
  const identity = identityFromSecrets(stored.signingSeed, stored.sealSecret);
  return {
    identity,
    mls: await mls.createMlsContext({ provider: opts.mlsProvider ?? 'node' }),
    opener: await createOpener(identity.sealSecret),
    miner: new PowMiner(opts.powWorkers !== undefined ? { workers: opts.powWorkers } : {}),
  };
}
