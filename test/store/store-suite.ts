/**
 * The one behaviour every RelayStore must have, run against each adapter (MemoryRelayStore is the
 * reference). Adapter-specific concerns (pragmas, row locks, encryption) live in their own files.
 * The tests live by area in store-suite-*.ts; this file composes them into one suite per adapter, in
 * one order, with one fresh store per test.
 */
import type { GroupRecord, InboundCommit, RelayStore, SessionRecord } from '../../framework/relay/store.js';
import { direct, grouped, type MakeStore, type StoreSuiteContext } from './store-fixtures.js';
import { describeCommitAtomicity } from './store-suite-atomicity.js';
import { describeGroups, describeGroupSummaries } from './store-suite-groups.js';
import { describeIdentity, describeKeyPackages, describePeers } from './store-suite-identity.js';
import {
  describeDedupe,
  describeLoadForMessage,
  describeMessageSenders,
  describeParkedInbound,
} from './store-suite-messages.js';
import { describeConversationData, describeOutbox } from './store-suite-outbox.js';
import { describeConversations, describeSessionAccess, describeSessions } from './store-suite-sessions.js';

// Callers import the fixtures from here, as they did before the suite was split.
export {
  at,
  bytes,
  direct,
  group,
  groupId,
  grouped,
  keyPackage,
  outbox,
  peer,
  session,
  topicId,
  type MakeStore,
} from './store-fixtures.js';

export function describeRelayStore(name: string, makeStore: MakeStore): void {
  describe(`RelayStore: ${name}`, () => {
    let store: RelayStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });

    const ctx: StoreSuiteContext = {
      get store() {
        return store;
      },
      commitSession: (s: SessionRecord, extra: InboundCommit = {}) =>
        store.commit({ ...extra, conversations: [s].map(direct) }),
      commitGroup: (g: GroupRecord, extra: InboundCommit = {}) =>
        store.commit({ ...extra, conversations: [g].map(grouped) }),
    };

    describeIdentity(ctx);
    describeKeyPackages(ctx);
    describePeers(ctx);
    describeSessions(ctx);
    describeConversations(ctx);
    describeGroups(ctx);
    describeLoadForMessage(ctx);
    describeDedupe(ctx);
    describeMessageSenders(ctx);
    describeOutbox(ctx);
    describeParkedInbound(ctx);
    describeGroupSummaries(ctx);
    describeSessionAccess(ctx);
    describeConversationData(ctx);
    describeCommitAtomicity(ctx);
  });
}
