/**
 * Ratchet-tree bounds (PROTOCOL.md §10, framework/relay/mls/tree-bounds.ts): the shape rules on
 * synthetic trees, genuine trees passing, a bombed tree refused by joinFromWelcome for 1:1 and group
 * limits before ts-mls's quadratic validation, and the check's own cost growing linearly.
 */
import type { RatchetTree } from 'ts-mls';
import { ProtocolError } from '../../framework/relay/errors.js';
import {
  commitGroup,
  createGroup,
  createMlsContext,
  createOneToOne,
  generateKeyPackage,
  joinFromWelcome,
  GroupLimitError,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import {
  assertTreeBounds,
  welcomeTreeLimits,
  type TreeLimits,
} from '../../framework/relay/mls/tree-bounds.js';
import { bombTree, decodeTree } from '../support/tree-bomb.js';
import { makeIdentity, nowSeconds } from './mls-helpers.js';

type Node = RatchetTree[number];
const leaf = (): Node => ({ nodeType: 'leaf', leaf: {} }) as unknown as Node;
const parent = (unmergedLeaves: number[]): Node => ({
  nodeType: 'parent',
  parent: { hpkePublicKey: new Uint8Array(32), parentHash: new Uint8Array(0), unmergedLeaves },
});
const GROUP: TreeLimits = welcomeTreeLimits(250, 2047);
const ONE_TO_ONE: TreeLimits = welcomeTreeLimits(2, undefined);

/** A full tree of `leaves` occupied leaves (a power of two) with empty parents. */
function fullTree(leaves: number): RatchetTree {
  return Array.from({ length: 2 * leaves - 1 }, (_, i) => (i % 2 === 0 ? leaf() : parent([])));
}

function withParent(tree: RatchetTree, index: number, unmerged: number[]): RatchetTree {
  const copy = tree.slice();
  copy[index] = parent(unmerged);
  return copy;
}

describe('assertTreeBounds on synthetic trees', () => {
  test('well-formed trees pass, unmerged leaves included', () => {
    expect(() => assertTreeBounds(fullTree(2), ONE_TO_ONE)).not.toThrow();
    // Root of 4 leaves (node 3) lists leaves 1 and 3; node 5 lists its own leaf 2.
    const tree = withParent(withParent(fullTree(4), 3, [1, 3]), 5, [2]);
    expect(() => assertTreeBounds(tree, GROUP)).not.toThrow();
    // Trailing blanks do not count; blank leaves inside do not either.
    const holes: RatchetTree = [leaf(), undefined, undefined, undefined, leaf(), undefined, undefined];
    expect(() => assertTreeBounds(holes, GROUP)).not.toThrow();
  });

  test('a leaf named twice → ProtocolError', () => {
    expect(() => assertTreeBounds(withParent(fullTree(4), 3, [1, 1]), GROUP)).toThrow(/twice/);
  });

  test('a leaf outside the parent, a blank leaf, or past the tree → ProtocolError', () => {
    expect(() => assertTreeBounds(withParent(fullTree(4), 1, [2]), GROUP)).toThrow(/not an occupied leaf/);
    const blank = fullTree(4);
    blank[6] = undefined;
    expect(() => assertTreeBounds(withParent(blank, 5, [3]), GROUP)).toThrow(/not an occupied leaf/);
    expect(() => assertTreeBounds(withParent(fullTree(4), 3, [9]), GROUP)).toThrow(/not an occupied leaf/);
  });

  test('more entries than leaves below the parent → ProtocolError before any lookup', () => {
    const err = (() => {
      try {
        assertTreeBounds(withParent(fullTree(2), 1, new Array<number>(65_000).fill(0)), ONE_TO_ONE);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err).not.toBeInstanceOf(GroupLimitError);
    expect((err as Error).message).toMatch(/65000 unmerged leaves/);
  });

  test('node kinds at the wrong index → ProtocolError', () => {
    const tree = fullTree(2);
    tree[1] = leaf();
    expect(() => assertTreeBounds(tree, ONE_TO_ONE)).toThrow(/wrong index/);
    const tree2 = fullTree(2);
    tree2[2] = parent([]);
    expect(() => assertTreeBounds(tree2, ONE_TO_ONE)).toThrow(/wrong index/);
  });

  test('a 1:1 tree is two leaves side by side; a group tree at most maxTreeNodes', () => {
    // Two leaves, but at leaf 0 and leaf 2: 5 nodes listed.
    const spread: RatchetTree = [leaf(), undefined, undefined, undefined, leaf()];
    expect(() => assertTreeBounds(spread, ONE_TO_ONE)).toThrow(GroupLimitError);
    expect(() => assertTreeBounds(fullTree(4), ONE_TO_ONE)).toThrow(GroupLimitError);
    const wide: TreeLimits = { maxNodes: 2047, maxLeaves: 2048 };
    expect(() => assertTreeBounds(fullTree(1024), wide)).not.toThrow(); // 2047 nodes
    const over = [...fullTree(1024), undefined, leaf()];
    expect(() => assertTreeBounds(over, wide)).toThrow(/2049 nodes/);
    expect(() => assertTreeBounds(fullTree(8), welcomeTreeLimits(250, 7))).toThrow(GroupLimitError);
    expect(() => assertTreeBounds(fullTree(8), welcomeTreeLimits(4, 2047))).toThrow(/8 members/);
    // A group of at most 2 members still gets its configured tree size, not the 1:1 shape.
    expect(() => assertTreeBounds(spread, welcomeTreeLimits(2, 2047))).not.toThrow();
  });
});

describe('joinFromWelcome refuses bombed trees', () => {
  let ctx: MlsContext;
  beforeAll(async () => {
    ctx = await createMlsContext();
  });

  test('1:1: the genuine tree joins; the same Welcome with a bombed tree → ProtocolError', async () => {
    const now = nowSeconds();
    const kp = await generateKeyPackage(ctx, makeIdentity(), now);
    const created = await createOneToOne(ctx, makeIdentity(), kp.keyPackage, { now });
    const bomb = bombTree(created.ratchetTree, 65_000);
    await expect(joinFromWelcome(ctx, created.welcome, bomb, [kp])).rejects.toThrow(/unmerged leaves/);
    const joined = await joinFromWelcome(ctx, created.welcome, created.ratchetTree, [kp]);
    expect(joined.members).toHaveLength(2);
  });

  test('group (4 members, group limits): the genuine tree joins; a bombed one → ProtocolError', async () => {
    const now = nowSeconds();
    const created = await createGroup(ctx, makeIdentity(), { now });
    const kps = await Promise.all([1, 2, 3].map(() => generateKeyPackage(ctx, makeIdentity(), now)));
    const commit = await commitGroup(ctx, created.state, { adds: kps.map((k) => k.keyPackage), now });
    const opts = { members: { min: 2, max: 250 }, maxTreeNodes: 2047 };
    expect(decodeTree(commit.ratchetTree)[1]?.nodeType).toBe('parent');
    const bomb = bombTree(commit.ratchetTree, 65_000);
    const refused = joinFromWelcome(ctx, commit.welcome!, bomb, [kps[0]!], opts);
    await expect(refused).rejects.toThrow(/unmerged leaves/);
    await expect(refused).rejects.not.toBeInstanceOf(GroupLimitError);
    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [kps[0]!], opts);
    expect(joined.members).toHaveLength(4);
  });
});

/**
 * The check's cost per unmerged entry at 1,024 and 65,536 leaves, for a root listing every other
 * leaf and then one leaf twice (rejected only at the last entry, so the whole list is walked). A
 * quadratic step would make the 64x larger tree ~64x dearer per entry; the bound is 8x, loose for a
 * noisy machine since each figure is the best of several rounds. No absolute time is asserted.
 */
describe('the check costs time linear in the tree', () => {
  const limits: TreeLimits = { maxNodes: 1 << 20, maxLeaves: 1 << 20 };

  function rootListingHalf(leaves: number): RatchetTree {
    const root = leaves - 1;
    const unmerged = Array.from({ length: leaves / 2 }, (_, i) => 2 * i);
    unmerged.push(0);
    return withParent(fullTree(leaves), root, unmerged);
  }

  function nsPerEntry(tree: RatchetTree, entries: number): number {
    const run = (): void => {
      try {
        assertTreeBounds(tree, limits);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
      }
    };
    const iterations = Math.max(1, Math.ceil((1 << 18) / entries));
    for (let i = 0; i < iterations; i++) run();
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < iterations; i++) run();
      best = Math.min(best, Number(process.hrtime.bigint() - start) / (iterations * entries));
    }
    return best;
  }

  test('65,536 leaves vs 1,024 leaves', () => {
    const small = rootListingHalf(1024);
    const large = rootListingHalf(65_536);
    expect(() => assertTreeBounds(large, limits)).toThrow(/leaf 0 twice/);
    const ratio = nsPerEntry(large, 65_536 * 2) / nsPerEntry(small, 1024 * 2);
    if (process.env.RELAY_GROWTH_REPORT)
      console.log(`tree bounds: large/small per-node cost ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThan(8);
  });
});
