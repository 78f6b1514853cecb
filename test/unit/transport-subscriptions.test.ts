/**
 * The transport's subscription table (framework/relay/transport-subscriptions.ts): which filter a
 * subscription is sent as (`$share/<group>/<topic>` when shared through a share group, without No
 * Local there), what is replayed after a lost session, and what an unsubscribe names.
 */
import { ArgumentError, TransportError } from '../../framework/relay/errors.js';
import {
  SharedSubscriptionsUnsupportedError,
  subscribeError,
  SubscriptionTable,
  validateShareGroup,
} from '../../framework/relay/transport-subscriptions.js';

test('shared subscriptions go through the share group, without No Local; others are unchanged', () => {
  const table = new SubscriptionTable('bots');
  expect(table.request(['p/u/1/inbox'], { qos: 1, shared: true })).toEqual({
    '$share/bots/p/u/1/inbox': { qos: 1, nl: false, rap: false, rh: 0 },
  });
  expect(table.request(['p/g/2/m'], { qos: 1, shared: true, noLocal: true })).toEqual({
    '$share/bots/p/g/2/m': { qos: 1, nl: false, rap: false, rh: 0 },
  });
  expect(table.request(['p/u/1/keys'], { qos: 1, noLocal: true })).toEqual({
    'p/u/1/keys': { qos: 1, nl: true, rap: false, rh: 0 },
  });
  // Without a share group, `shared` changes nothing.
  expect(
    new SubscriptionTable(undefined).request(['p/g/2/m'], { qos: 1, shared: true, noLocal: true }),
  ).toEqual({
    'p/g/2/m': { qos: 1, nl: true, rap: false, rh: 0 },
  });
  // An explicit $share/ filter with No Local stays a caller error.
  expect(() => table.request(['$share/x/t'], { qos: 1, noLocal: true })).toThrow(ArgumentError);
});

test('replay restores confirmed subscriptions as sent; unsubscribe names the filter that was used', () => {
  const table = new SubscriptionTable('bots');
  expect(table.replay()).toBeUndefined();
  table.confirm(['a', 'b'], { qos: 1, shared: true });
  table.confirm(['c'], { qos: 0 });
  expect(table.size).toBe(3);
  expect(table.replay()).toEqual({
    '$share/bots/a': { qos: 1, nl: false, rap: false, rh: 0 },
    '$share/bots/b': { qos: 1, nl: false, rap: false, rh: 0 },
    c: { qos: 0, nl: false, rap: false, rh: 0 },
  });
  expect(table.forget('a')).toBe('$share/bots/a');
  expect(table.forget('c')).toBe('c');
  expect(table.forget('never')).toBe('never');
  expect(Object.keys(table.replay()!)).toEqual(['$share/bots/b']);
});

test('share names and SUBACK 0x9E', () => {
  expect(validateShareGroup('bot-1')).toBe('bot-1');
  for (const bad of ['', 'a/b', 'a+', '#']) expect(() => validateShareGroup(bad)).toThrow(/share name/);
  const refused = Object.assign(new Error('Subscribe error: Shared Subscriptions not supported'), {
    code: 0x9e,
  });
  const e = subscribeError(refused, 'subscribe to $share/bots/t');
  expect(e).toBeInstanceOf(SharedSubscriptionsUnsupportedError);
  expect(e.message).toMatch(/such as Mosquitto/);
  const other = subscribeError(Object.assign(new Error('Not authorized'), { code: 0x87 }), 'subscribe to t');
  expect(other).toBeInstanceOf(TransportError);
  expect(other).not.toBeInstanceOf(SharedSubscriptionsUnsupportedError);
  expect(other.message).toBe('subscribe to t failed: Not authorized');
});

test('the shared subscriptions (what a stopping replica leaves) are listed by topic and by filter', () => {
  const table = new SubscriptionTable('bots');
  table.confirm(['p/u/1/inbox', 'p/g/2/m'], { qos: 1, shared: true });
  table.confirm(['p/u/1/keys'], { qos: 1 });
  expect(table.sharedTopics()).toEqual(['p/u/1/inbox', 'p/g/2/m']);
  expect(table.sharedFilters()).toEqual(['$share/bots/p/u/1/inbox', '$share/bots/p/g/2/m']);
  table.forget('p/g/2/m');
  expect(table.sharedFilters()).toEqual(['$share/bots/p/u/1/inbox']);
  // Without a share group nothing is shared: a single process keeps its subscriptions.
  const single = new SubscriptionTable(undefined);
  single.confirm(['p/u/1/inbox'], { qos: 1, shared: true });
  expect(single.sharedTopics()).toEqual([]);
});
