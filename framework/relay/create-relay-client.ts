/**
 * createRelayClient: the root entry's way to make a RelayClient. It is RelayClient.create (load the
 * identity from the store, creating one on first use) with the broker given as a URL when nothing
 * else about the connection needs saying.
 */
import { RelayClient, type BrokerOptions, type RelayClientOptions } from './client.js';

/** RelayClientOptions with the broker given as a URL or as BrokerOptions. */
export interface CreateRelayClientOptions extends Omit<RelayClientOptions, 'broker'> {
  /** `mqtt://host:port` (or mqtts://, ws://, wss://), or the full broker options. */
  broker: string | BrokerOptions;
}

/** Makes a RelayClient (identity loaded from the store or created); `broker` may be a URL. */
export function createRelayClient(options: CreateRelayClientOptions): Promise<RelayClient> {
  const { broker, ...rest } = options;
  return RelayClient.create({ ...rest, broker: typeof broker === 'string' ? { url: broker } : broker });
}
