/**
 * Bounds on a received ratchet tree, checked before ts-mls validates it (PROTOCOL.md §10).
 *
 * ts-mls 1.6.4 compares each parent's unmerged_leaves list with its ancestors' lists once per
 * entry, so a parent listing one leaf n times costs n² steps: a 256 KiB Welcome held a client for
 * seconds to minutes. Everything here is one pass over the decoded tree (decoding is linear), so a
 * tree that passes costs ts-mls at most (leaves below a parent)² per parent, and the node count
 * caps that.
 */
import type { RatchetTree } from 'ts-mls';
import { ProtocolError } from '../errors.js';

/**
 * A Welcome for a group larger than the caller accepts (member count or ratchet tree size): a
 * ProtocolError the caller can tell apart from an invalid Welcome, to report "group too large".
 */
export class GroupLimitError extends ProtocolError {}

export interface TreeLimits {
  /** Largest tree in nodes as listed on the wire (trailing blanks excluded). */
  readonly maxNodes: number;
  /** Most occupied leaves accepted. */
  readonly maxLeaves: number;
}

/** Nodes up to and including the last non-blank one. */
function listedLength(tree: RatchetTree): number {
  let n = tree.length;
  while (n > 0 && tree[n - 1] === undefined) n--;
  return n;
}

/** Level of a node index in the array representation (RFC 9420 §C): its count of trailing 1 bits. */
function level(nodeIndex: number): number {
  let k = 0;
  while (((nodeIndex >> k) & 1) === 1) k++;
  return k;
}

/**
 * Throws GroupLimitError when the tree is over `limits`, ProtocolError when its shape is not a
 * ratchet tree: a leaf at an odd index or a parent at an even one, or a parent whose
 * unmerged_leaves names a leaf twice, a leaf outside its subtree, or a blank leaf (RFC 9420 §7.9).
 */
export function assertTreeBounds(tree: RatchetTree, limits: TreeLimits): void {
  const listed = listedLength(tree);
  if (listed > limits.maxNodes) {
    throw new GroupLimitError(`ratchet tree has ${listed} nodes, more than ${limits.maxNodes}`);
  }
  let leaves = 0;
  for (let i = 0; i < listed; i++) {
    const node = tree[i];
    if (node === undefined) continue;
    const isLeafIndex = i % 2 === 0;
    if ((node.nodeType === 'leaf') !== isLeafIndex) {
      throw new ProtocolError(`ratchet tree node ${i} is a ${node.nodeType} at the wrong index`);
    }
    if (node.nodeType === 'leaf') leaves++;
  }
  if (leaves > limits.maxLeaves) {
    throw new GroupLimitError(`ratchet tree has ${leaves} members, more than ${limits.maxLeaves}`);
  }
  for (let i = 1; i < listed; i += 2) {
    const node = tree[i];
    if (node?.nodeType === 'parent') checkUnmergedLeaves(tree, i, node.parent.unmergedLeaves);
  }
}

/** Each entry a distinct non-blank leaf below `parentIndex`; so never more than the subtree's leaves. */
function checkUnmergedLeaves(tree: RatchetTree, parentIndex: number, unmerged: readonly number[]): void {
  const reach = (1 << level(parentIndex)) - 1;
  if (unmerged.length > reach + 1) {
    throw new ProtocolError(`parent ${parentIndex} lists ${unmerged.length} unmerged leaves`);
  }
  const seen = new Set<number>();
  for (const leaf of unmerged) {
    const leafNode = leaf * 2;
    if (Math.abs(leafNode - parentIndex) > reach || tree[leafNode]?.nodeType !== 'leaf') {
      throw new ProtocolError(`parent ${parentIndex} lists leaf ${leaf}, not an occupied leaf below it`);
    }
    if (seen.has(leaf)) throw new ProtocolError(`parent ${parentIndex} lists leaf ${leaf} twice`);
    seen.add(leaf);
  }
}

/** The group default of `maxTreeNodes` (GroupOptions): 1,024 leaf slots. */
export const DEFAULT_MAX_TREE_NODES = 2047;

/**
 * The limits for a Welcome: a group join names its `maxTreeNodes` (GroupOptions); without one, a
 * Welcome for at most 2 members is a 1:1 one, whose tree is exactly two leaves side by side (3 nodes,
 * PROTOCOL.md §10), and anything larger gets the group default.
 */
export function welcomeTreeLimits(maxMembers: number, maxTreeNodes: number | undefined): TreeLimits {
  if (maxTreeNodes !== undefined) return { maxNodes: maxTreeNodes, maxLeaves: maxMembers };
  if (maxMembers <= 2) return { maxNodes: 3, maxLeaves: 2 };
  return { maxNodes: DEFAULT_MAX_TREE_NODES, maxLeaves: maxMembers };
}
