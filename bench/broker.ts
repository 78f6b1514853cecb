/**
 * The broker the network benches measure through. A private Mosquitto with `set_tcp_nodelay true`
 * (as every config we ship has) when the binary is installed: the shared one on :1883 keeps Nagle
 * on at the broker and adds ~40 ms per hop. The embedded broker otherwise, so the bench still runs.
 */
import { startPrivateBroker } from '../test/support/broker.js';

export interface BenchBroker {
  readonly url: string;
  /** For the report: which broker the figures came through. */
  readonly kind: string;
  close(): Promise<void>;
}

export async function pickBroker(): Promise<BenchBroker> {
  try {
    const b = await startPrivateBroker('mosquitto');
    return { url: b.url, close: () => b.close(), kind: 'private mosquitto (set_tcp_nodelay true)' };
  } catch {
    const b = await startPrivateBroker('embedded');
    return { url: b.url, close: () => b.close(), kind: 'embedded aedes (mosquitto not installed)' };
  }
}
