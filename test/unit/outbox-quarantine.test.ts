/** Which publish failures quarantine an outbox row (for good) and which are retried. */
import { jest } from '@jest/globals';
import { TransportError } from '../../framework/relay/errors.js';
import { isPermanentPublishFailure, withCommit } from '../../framework/relay/outbox-quarantine.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import { PublishTooLargeError } from '../../framework/relay/transport-packet-size.js';

/** What MqttTransport rejects with when the broker's PUBACK carries an error reason code. */
const refused = (code: number) =>
  new TransportError('publish to t failed: Publish error', {
    cause: Object.assign(new Error('x'), { code }),
  });

test('size errors and PUBACK reasons the same PUBLISH would get again are permanent', () => {
  expect(
    isPermanentPublishFailure(new PublishTooLargeError('payload of 9 bytes exceeds maxPayloadBytes 8')),
  ).toBe(true);
  for (const code of [0x87, 0x90, 0x95, 0x99]) expect(isPermanentPublishFailure(refused(code))).toBe(true);
});

test('offline, quota and unspecified failures are retried', () => {
  expect(isPermanentPublishFailure(new TransportError('transport ended'))).toBe(false);
  for (const code of [0x80, 0x83, 0x97]) expect(isPermanentPublishFailure(refused(code))).toBe(false);
  expect(isPermanentPublishFailure(new Error('anything else'))).toBe(false);
  expect(isPermanentPublishFailure(undefined)).toBe(false);
});

test('withCommit binds each store method once, and again only when the method was replaced', async () => {
  const store = new MemoryRelayStore();
  const commit = jest.fn(async () => undefined);
  const wrapped = withCommit(store, commit);
  // The inbound path reads a few methods per message; a bind per read was an allocation per call.
  expect(wrapped.getGroup).toBe(wrapped.getGroup);
  expect(wrapped.commit).toBe(commit);
  await expect(wrapped.getGroup('00')).resolves.toBeUndefined();
  // A method replaced on the store (a test's spy) is what the wrapper serves from then on.
  const spy = jest.spyOn(store, 'getGroup');
  await wrapped.getGroup('01');
  expect(spy).toHaveBeenCalledWith('01');
});
