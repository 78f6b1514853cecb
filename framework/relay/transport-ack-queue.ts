/**
 * Orders the PUBACKs of one network connection. Handlers of inbound QoS 1 messages run
 * concurrently, but MQTT 5 §4.6 requires PUBACKs in the order the PUBLISH packets arrived, so an
 * acknowledgement waits until every earlier message of the same connection has been acknowledged.
 * A message whose handler failed is never acknowledged; the owner drops the connection, and the
 * queue, so the broker redelivers it and everything after it.
 */
export class AckQueue {
  private readonly entries: Array<{ messageId: number; done: boolean }> = [];

  constructor(private readonly sendAck: (messageId: number) => void) {}

  /** Registers an arrival; call the returned function once its handler succeeded. */
  arrive(messageId: number): () => void {
    const entry = { messageId, done: false };
    this.entries.push(entry);
    return () => {
      entry.done = true;
      this.flush();
    };
  }

  private flush(): void {
    while (this.entries[0]?.done) {
      const head = this.entries.shift()!;
      this.sendAck(head.messageId);
    }
  }
}
