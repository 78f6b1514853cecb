/**
 * A memory store whose next commit of a processed message (a 1:1 or group MLS message) fails once,
 * after `armed` resolves: a storage error in the middle of a conversation, for the order tests.
 */
import { MemoryRelayStore, type InboundCommit } from '../../framework/relay/index.js';

export class FailOnceStore extends MemoryRelayStore {
  /** Set by the test; taken by the next processed commit, which awaits it and then fails. */
  armed: (() => Promise<void>) | undefined;
  failures = 0;

  override async commit(c: InboundCommit): Promise<void> {
    const before = this.armed;
    if (before && c.processed) {
      this.armed = undefined;
      await before();
      this.failures++;
      throw new Error('storage: connection lost (test)');
    }
    return super.commit(c);
  }
}

/** A memory store whose commits of processed messages in one conversation fail while `failing` says so. */
export class FailWhileStore extends MemoryRelayStore {
  /** Set by the test: the hex MLS group id whose processed messages fail, and until when. */
  failing: { groupId: string; until: () => boolean } | undefined;
  failures = 0;

  override async commit(c: InboundCommit): Promise<void> {
    const f = this.failing;
    if (f && c.processed?.groupId === f.groupId && !f.until()) {
      this.failures++;
      throw new Error('storage: connection lost (test)');
    }
    return super.commit(c);
  }
}
