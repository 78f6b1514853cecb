/**
 * framework/testing, published as `relay-bot/testing`: run a bot end to end in tests, on a real broker and database, and talk to it
 * through real Relay peers. See harness.ts.
 */
export { createTestHarness, DEFAULT_REPLY_TIMEOUT_MS, DEFAULT_TEST_POW_BITS } from './harness.js';
export type {
  TestHarness,
  TestHarnessOptions,
  TestPeer,
  TestReply,
  TestGroupMessage,
  TestTyping,
  TestBot,
  BotConstructor,
} from './harness.js';
