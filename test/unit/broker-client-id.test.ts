/**
 * The MQTT client id of a RelayClient (framework/relay/broker-client-id.ts): the default stays
 * `relay-<user id>`, a replica slot makes it stable per slot, and a share group without a distinct
 * id per process is refused before anything connects.
 */
import { ArgumentError, MemoryRelayStore, RelayClient } from '../../framework/relay/index.js';
import {
  brokerClientId,
  clientIdOfReplica,
  holderBase,
  processHolder,
  slotOfReplica,
} from '../../framework/relay/broker-client-id.js';

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

test('a process holder adds an instance to its slot; both formats name the same slot and client id', () => {
  const a = processHolder('bots/0');
  const b = processHolder('bots/0');
  expect(a).toMatch(/^bots\/0~[0-9a-f]{8}$/);
  // Two processes configured alike hold their leases under different names.
  expect(a).not.toBe(b);
  expect(processHolder('bots/0', '0123abcd')).toBe('bots/0~0123abcd');
  expect(() => processHolder('bots/0', 'nothex!!')).toThrow(ArgumentError);
  // Rows of releases before the instance suffix (`bots/0`) read as before.
  for (const id of ['bots/0', a, 'bots/0~0123abcd']) {
    expect(holderBase(id)).toBe('bots/0');
    expect(slotOfReplica('bots', id)).toBe(0);
    expect(clientIdOfReplica(user, 'bots', { replicaId: id })).toBe(`relay-${user}-0`);
  }
  for (const id of ['bots/mine', 'bots/mine~0123abcd']) {
    expect(slotOfReplica('bots', id)).toBeUndefined();
    expect(clientIdOfReplica(user, 'bots', { replicaId: id })).toBe('mine');
  }
  expect(slotOfReplica('other', a)).toBeUndefined();
  // An auto replica's id names no slot: its slot lease does.
  expect(slotOfReplica('bots', 'bots/host-0123abcd')).toBeUndefined();
  expect(clientIdOfReplica(user, 'bots', { replicaId: 'bots/host-0123abcd', slot: 2 })).toBe(
    `relay-${user}-2`,
  );
});
