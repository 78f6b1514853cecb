/** Which publish failures quarantine an outbox row (for good) and which are retried. */
import { TransportError } from '../../framework/relay/errors.js';
import { isPermanentPublishFailure } from '../../framework/relay/outbox-quarantine.js';
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
