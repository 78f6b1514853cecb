import { VersionedLru } from '../../framework/relay/state-cache.js';

test('an entry is served only at the version it was stored with', () => {
  const lru = new VersionedLru<string>(10);
  lru.set('g', 3, 'state@3');
  expect(lru.get('g', 3)).toBe('state@3');
  expect(lru.get('g', 4)).toBeUndefined();
  // A mismatch evicts: the stale copy is never served again, even at its old version.
  expect(lru.get('g', 3)).toBeUndefined();
});

test('capacity evicts the least recently used entry', () => {
  const lru = new VersionedLru<number>(2);
  lru.set('a', 1, 1);
  lru.set('b', 1, 2);
  expect(lru.get('a', 1)).toBe(1);
  lru.set('c', 1, 3);
  expect(lru.get('b', 1)).toBeUndefined();
  expect(lru.get('a', 1)).toBe(1);
  expect(lru.get('c', 1)).toBe(3);
  expect(lru.size).toBe(2);
});

test('the byte bound evicts least recently used states until the rest fit', () => {
  const lru = new VersionedLru<string>(100, 1000);
  lru.set('a', 1, 'a', 400);
  lru.set('b', 1, 'b', 400);
  expect(lru.get('a', 1)).toBe('a');
  lru.set('c', 1, 'c', 400);
  expect(lru.get('b', 1)).toBeUndefined();
  expect(lru.bytes).toBe(800);
  // Replacing an entry counts its new size only; a state larger than the bound is not kept.
  lru.set('a', 2, 'a2', 100);
  expect(lru.bytes).toBe(500);
  lru.set('huge', 1, 'huge', 1001);
  expect(lru.get('huge', 1)).toBeUndefined();
  expect(lru.size).toBe(2);
  // A version mismatch evicts and releases its bytes.
  expect(lru.get('c', 9)).toBeUndefined();
  expect(lru.bytes).toBe(100);
});
