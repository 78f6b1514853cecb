/**
 * Hostile ratchet trees (PROTOCOL.md §10, issue 10 hole 4): a legitimate tree whose parent node
 * lists one leaf over and over in unmerged_leaves. ts-mls 1.6.4 compares each parent's list with
 * its ancestors' lists once per entry, so n entries cost n² steps before any hash is checked.
 */
import { decodeRatchetTree, encodeRatchetTree } from 'ts-mls/ratchetTree.js';
import type { RatchetTree } from 'ts-mls';

export function decodeTree(bytes: Uint8Array): RatchetTree {
  const decoded = decodeRatchetTree(bytes, 0);
  if (decoded === undefined) throw new Error('tree does not decode');
  return decoded[0];
}

const MARKER = 0x5a5a5a5a;

/** RFC 9420 §2.1.2 variable-length integer. */
function varint(n: number): Uint8Array {
  if (n < 1 << 6) return Uint8Array.of(n);
  if (n < 1 << 14) return Uint8Array.of(0x40 | (n >> 8), n & 0xff);
  return Uint8Array.of(0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function varintLength(first: number): number {
  return 1 << (first >> 6);
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * `treeBytes` (a valid tree with a leaf at index 0) with node 1 made a parent that lists leaf 0
 * `entries` times. Node 1 keeps its keys when it is already a parent, else gets a made-up one.
 * Encoded by hand: ts-mls's encoder recurses once per list entry and overflows the stack.
 */
export function bombTree(treeBytes: Uint8Array, entries: number): Uint8Array {
  const tree = decodeTree(treeBytes).slice();
  const node = tree[1];
  const parent =
    node?.nodeType === 'parent'
      ? node.parent
      : { hpkePublicKey: new Uint8Array(32).fill(7), parentHash: new Uint8Array(0), unmergedLeaves: [] };
  tree[1] = { nodeType: 'parent', parent: { ...parent, unmergedLeaves: [MARKER] } };
  const marked = encodeRatchetTree(tree);
  const bodyStart = varintLength(marked[0]!);
  const body = marked.subarray(bodyStart);
  const list = Uint8Array.of(4, 0x5a, 0x5a, 0x5a, 0x5a);
  const at = indexOf(body, list);
  if (at < 0) throw new Error('marker not found');
  const bombList = new Uint8Array(entries * 4); // leaf 0, as uint32, `entries` times
  const newBody = new Uint8Array([
    ...body.subarray(0, at),
    ...varint(bombList.length),
    ...bombList,
    ...body.subarray(at + list.length),
  ]);
  return new Uint8Array([...varint(newBody.length), ...newBody]);
}
