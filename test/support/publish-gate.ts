/**
 * A TCP proxy in front of the broker for one replica, which can hold back that replica's own
 * PUBLISH packets while passing everything else both ways (its PUBACKs for what it received
 * included). With the gate shut the replica still receives, handles and commits messages and
 * acknowledges them to the broker, but none of its committed replies reach the broker: they stay
 * in the outbox as committed-but-unpublished rows. A replica killed then leaves exactly the rows
 * another replica must take over.
 *
 * It also counts, per direction, the QoS 1 PUBLISH packets the broker sent and the PUBACKs the
 * replica returned, so a test can wait until the replica holds no unacknowledged inbound message.
 */
import net from 'node:net';

const PUBLISH = 3;
const PUBACK = 4;

export interface PublishGate {
  /** mqtt://127.0.0.1:<port>, for the replica's broker url. */
  readonly url: string;
  /** Drop the replica's PUBLISH packets from now on. */
  shut(): void;
  /** Pass them again. */
  open(): void;
  /** The replica's PUBLISH packets dropped so far. */
  readonly dropped: number;
  /** QoS 1/2 PUBLISH packets the broker sent the replica. */
  readonly delivered: number;
  /** PUBACK packets the replica sent the broker. */
  readonly acked: number;
  close(): Promise<void>;
}

/**
 * Splits a byte stream into MQTT control packets (fixed header: type in the high nibble of the
 * first byte, then the remaining length as a variable byte integer of up to four bytes).
 */
class PacketSplitter {
  private buffered = Buffer.alloc(0);

  /** The complete packets in what arrived so far; an incomplete tail waits for more bytes. */
  push(chunk: Buffer): Buffer[] {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const packets: Buffer[] = [];
    for (;;) {
      const size = this.packetSize();
      if (size === undefined || this.buffered.length < size) return packets;
      packets.push(this.buffered.subarray(0, size));
      this.buffered = this.buffered.subarray(size);
    }
  }

  private packetSize(): number | undefined {
    let remaining = 0;
    for (let i = 1; i <= 4; i++) {
      if (this.buffered.length <= i) return undefined;
      const byte = this.buffered[i]!;
      remaining += (byte & 0x7f) * 128 ** (i - 1);
      if ((byte & 0x80) === 0) return 1 + i + remaining;
    }
    throw new Error('malformed MQTT remaining length');
  }
}

const typeOf = (packet: Buffer): number => packet[0]! >> 4;
const qosOf = (packet: Buffer): number => (packet[0]! >> 1) & 3;

/** Starts a gate (open) on a free port of 127.0.0.1 in front of the broker at `brokerPort`. */
export async function startPublishGate(brokerPort = 1883, brokerHost = '127.0.0.1'): Promise<PublishGate> {
  let shut = false;
  let dropped = 0;
  let delivered = 0;
  let acked = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(brokerPort, brokerHost);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    const toClient = new PacketSplitter();
    const toBroker = new PacketSplitter();
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    upstream.on('data', (chunk: Buffer) => {
      for (const p of toClient.push(chunk)) if (typeOf(p) === PUBLISH && qosOf(p) > 0) delivered++;
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      for (const p of toBroker.push(chunk)) {
        if (typeOf(p) === PUBACK) acked++;
        if (shut && typeOf(p) === PUBLISH) dropped++;
        else upstream.write(p);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    shut: () => void (shut = true),
    open: () => void (shut = false),
    get dropped() {
      return dropped;
    },
    get delivered() {
      return delivered;
    },
    get acked() {
      return acked;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
