/**
 * The MQTT client id of a RelayClient (framework/relay/broker-client-id.ts): the default stays
 * `relay-<user id>`, a replica slot makes it stable per slot, and a share group without a distinct
 * id per process is refused before anything connects.
 */
import { ArgumentError, MemoryRelayStore, RelayClient } from '../../framework/relay/index.js';
import { brokerClientId } from '../../framework/relay/broker-client-id.js';

const user = 'ab'.repeat(32);

test('the default is unchanged; a replica slot gives each replica its own stable id', () => {
  expect(brokerClientId(user, {})).toBe(`relay-${user}`);
  expect(brokerClientId(user, { replicaSlot: 0 })).toBe(`relay-${user}-0`);
  expect(brokerClientId(user, { replicaSlot: 3, shareGroup: 'bots' })).toBe(`relay-${user}-3`);
  expect(brokerClientId(user, { replicaSlot: 3 })).toBe(brokerClientId(user, { replicaSlot: 3 }));
  expect(brokerClientId(user, { clientId: 'mine', shareGroup: 'bots' })).toBe('mine');
});

test('ambiguous or unsafe choices are refused with the fix named', () => {
  expect(() => brokerClientId(user, { shareGroup: 'bots' })).toThrow(/set broker\.replicaSlot/);
  expect(() => brokerClientId(user, { clientId: 'x', replicaSlot: 1 })).toThrow(/not both/);
  expect(() => brokerClientId(user, { replicaSlot: -1 })).toThrow(ArgumentError);
  expect(() => brokerClientId(user, { replicaSlot: 1.5 })).toThrow(/non-negative integer/);
});

test('RelayClient.create refuses a share group without a replica slot, and a bad share name', async () => {
  const url = 'mqtt://127.0.0.1:1';
  await expect(
    RelayClient.create({ store: new MemoryRelayStore(), broker: { url, shareGroup: 'bots' } }),
  ).rejects.toThrow(/broker\.shareGroup needs a client id of its own per process/);
  await expect(
    RelayClient.create({ store: new MemoryRelayStore(), broker: { url, shareGroup: 'a/b', replicaSlot: 0 } }),
  ).rejects.toThrow(/not a valid MQTT 5 share name/);
});
