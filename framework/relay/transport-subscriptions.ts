/**
 * The subscriptions of one MqttTransport: the topic filters actually sent (a `shared` subscription
 * becomes `$share/<group>/<topic>` when the transport has a share group), and the record of what
 * the broker confirmed, replayed when it reports a lost session.
 */
import type { ISubscriptionMap } from 'mqtt';
import { ArgumentError, TransportError } from './errors.js';
import type { SubscribeOptions } from './transport-types.js';

const SHARE_PREFIX = '$share/';
/** SUBACK reason code 0x9E, Shared Subscriptions not supported (MQTT 5 §3.9.3). */
const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9e;

/**
 * The broker has no MQTT 5 shared subscriptions (its CONNACK says so, or it refused a `$share/`
 * filter), which a `shareGroup` needs.
 */
export class SharedSubscriptionsUnsupportedError extends TransportError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super(
      `${detail}: shareGroup needs an MQTT 5 broker with shared subscriptions, such as Mosquitto ` +
        '(the embedded broker has none); connect to one, or leave shareGroup unset to run a single process',
      options,
    );
  }
}

/**
 * Checks a share group name (MQTT 5 §4.8.2: at least one character, no '/', '+' or '#'); throws
 * ArgumentError naming the fix.
 */
export function validateShareGroup(name: string): string {
  if (name.length === 0 || /[/+#]/.test(name)) {
    throw new ArgumentError(
      `shareGroup ${JSON.stringify(name)} is not a valid MQTT 5 share name: use a non-empty name without '/', '+' or '#'`,
    );
  }
  return name;
}

interface Subscription {
  filter: string;
  opts: SubscribeOptions;
}

/** The filters a transport subscribes with, and the confirmed subscriptions it restores. */
export class SubscriptionTable {
  /** Confirmed subscriptions by the topic the caller named. */
  private readonly confirmed = new Map<string, Subscription>();

  constructor(private readonly shareGroup: string | undefined) {}

  /** How many subscriptions the broker confirmed. */
  get size(): number {
    return this.confirmed.size;
  }

  /** The SUBSCRIBE map for `topics`; throws ArgumentError for No Local on an explicit `$share/` filter. */
  request(topics: string[], opts: SubscribeOptions): ISubscriptionMap {
    const map: ISubscriptionMap = {};
    for (const topic of topics) {
      const { filter, noLocal } = this.resolve(topic, opts);
      // MQTT 5 §3.8.3.1: No Local on a shared subscription is a Protocol Error.
      if (noLocal && filter.startsWith(SHARE_PREFIX)) {
        throw new ArgumentError(`noLocal is not allowed on shared subscription ${topic}`);
      }
      map[filter] = { qos: opts.qos, nl: noLocal, rap: false, rh: 0 };
    }
    return map;
  }

  /** Records subscriptions the broker confirmed. */
  confirm(topics: string[], opts: SubscribeOptions): void {
    for (const topic of topics) {
      this.confirmed.set(topic, { filter: this.resolve(topic, opts).filter, opts: { ...opts } });
    }
  }

  /** Forgets a subscription; returns the filter to unsubscribe from. */
  forget(topic: string): string {
    const filter = this.confirmed.get(topic)?.filter ?? topic;
    this.confirmed.delete(topic);
    return filter;
  }

  /** The topics of the confirmed shared subscriptions (only with a share group). */
  sharedTopics(): string[] {
    if (this.shareGroup === undefined) return [];
    return [...this.confirmed].filter(([, s]) => s.opts.shared).map(([topic]) => topic);
  }

  /** The filters (`$share/<group>/<topic>`) of the confirmed shared subscriptions. */
  sharedFilters(): string[] {
    return this.sharedTopics().map((topic) => this.confirmed.get(topic)!.filter);
  }

  /** The SUBSCRIBE map restoring every confirmed subscription, or undefined when there are none. */
  replay(): ISubscriptionMap | undefined {
    if (this.confirmed.size === 0) return undefined;
    const map: ISubscriptionMap = {};
    for (const [topic, { opts }] of this.confirmed) Object.assign(map, this.request([topic], opts));
    return map;
  }

  private resolve(topic: string, opts: SubscribeOptions): { filter: string; noLocal: boolean } {
    if (opts.shared && this.shareGroup !== undefined) {
      // No Local is a Protocol Error on a shared subscription; the layer above sees its own messages.
      return { filter: `${SHARE_PREFIX}${this.shareGroup}/${topic}`, noLocal: false };
    }
    return { filter: topic, noLocal: opts.noLocal ?? false };
  }
}

/** The error of a failed SUBSCRIBE: SharedSubscriptionsUnsupportedError for SUBACK 0x9E. */
export function subscribeError(cause: unknown, what: string): TransportError {
  const message = cause instanceof Error ? cause.message : String(cause);
  if ((cause as { code?: unknown } | undefined)?.code === SHARED_SUBSCRIPTIONS_NOT_SUPPORTED) {
    return new SharedSubscriptionsUnsupportedError(`the broker refused ${what} (${message})`, { cause });
  }
  return new TransportError(`${what} failed: ${message}`, { cause });
}
