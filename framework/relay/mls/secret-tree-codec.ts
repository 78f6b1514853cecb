/**
 * Our storage encoding of a ts-mls secret tree (RFC 9420 §9): the leaves' handshake and
 * application ratchets only. It is written on every group message, so it is a flat layout over a
 * growing buffer rather than ts-mls's combinator encoder (about 0.45 ms for a 100-member tree),
 * and fixed-size per leaf, so that a tree which moved at one leaf (one message) is written by
 * copying the previous encoding and writing that leaf alone (writeSecretTreeFrom).
 *
 * ts-mls derives a ratchet pair for every node, parents included, but only ever reads a leaf's
 * (messageProtection.js: `secretTree[leafToNodeIndex(leaf)]`). The parents' pairs are secrets
 * nothing uses, so they are not stored; a decoded tree holds PARENT_PLACEHOLDER there, whose empty
 * secrets could derive no key if ts-mls ever did read one.
 *
 * Layout: u32 node count (odd) | u8 secret length L | per leaf node (even index) the handshake
 *   then the application ratchet, each L bytes of secret and u32 generation | u32 count | count ×
 *   (u32 leaf | u8 ratchet: 0 handshake, 1 application | u32 generation | u8 length | key): the
 *   keys kept for skipped generations (ts-mls unusedGenerations), usually none.
 */
import type { GenerationSecret, SecretTree, SecretTreeNode } from 'ts-mls/secretTree.js';
import { CodecError } from '../errors.js';
import type { ByteReader, ByteWriter } from './session-bytes.js';

/** 2^16 leaves, far above the group cap (PROTOCOL.md §9: 250); bounds a corrupt count. */
const MAX_NODES = 2 * 65536 - 1;
const HEADER_BYTES = 5;

const EMPTY_RATCHET: GenerationSecret = Object.freeze({
  secret: new Uint8Array(0),
  generation: 0,
  unusedGenerations: Object.freeze({}) as Record<number, Uint8Array>,
});

export const PARENT_PLACEHOLDER: SecretTreeNode = Object.freeze({
  handshake: EMPTY_RATCHET,
  application: EMPTY_RATCHET,
});

const leafBytes = (secretLength: number): number => 2 * (secretLength + 4);

function leafAt(tree: SecretTree, node: number): SecretTreeNode {
  const leaf = tree[node];
  if (leaf === undefined) throw new CodecError('secret tree without a leaf node');
  return leaf;
}

function writeRatchet(w: ByteWriter, g: GenerationSecret, secretLength: number): void {
  if (g.secret.length !== secretLength) throw new CodecError('secret tree secrets differ in length');
  w.raw(g.secret);
  w.u32(g.generation);
}

function writeLeaf(w: ByteWriter, leaf: SecretTreeNode, secretLength: number): void {
  writeRatchet(w, leaf.handshake, secretLength);
  writeRatchet(w, leaf.application, secretLength);
}

/** The retained keys of skipped generations, every leaf's; a for-in count avoids arrays per leaf. */
function writeUnused(w: ByteWriter, tree: SecretTree): void {
  let count = 0;
  for (let node = 0; node < tree.length; node += 2) {
    const leaf = leafAt(tree, node);
    for (const _ in leaf.handshake.unusedGenerations) count++;
    for (const _ in leaf.application.unusedGenerations) count++;
  }
  w.u32(count);
  if (count === 0) return;
  for (let node = 0; node < tree.length; node += 2) {
    const leaf = leafAt(tree, node);
    for (const [kind, ratchet] of [leaf.handshake, leaf.application].entries()) {
      for (const [generation, key] of Object.entries(ratchet.unusedGenerations)) {
        w.u32(node / 2);
        w.u8(kind);
        w.u32(Number(generation));
        w.short(key);
      }
    }
  }
}

function secretLengthOf(tree: SecretTree): number {
  const length = leafAt(tree, 0).handshake.secret.length;
  if (length > 255) throw new CodecError('secret tree secret too long for the session format');
  return length;
}

export function writeSecretTree(w: ByteWriter, tree: SecretTree): void {
  const secretLength = secretLengthOf(tree);
  w.u32(tree.length);
  w.u8(secretLength);
  for (let node = 0; node < tree.length; node += 2) writeLeaf(w, leafAt(tree, node), secretLength);
  writeUnused(w, tree);
}

/**
 * `tree` written from `before` and `beforeBytes`, the writeSecretTree encoding of `before`: leaves
 * that are the same objects in both are copied from those bytes, in runs, and only the others are
 * written. Falls back to writeSecretTree when the shapes differ.
 */
export function writeSecretTreeFrom(
  w: ByteWriter,
  tree: SecretTree,
  before: SecretTree,
  beforeBytes: Uint8Array,
): void {
  const secretLength = secretLengthOf(tree);
  const size = leafBytes(secretLength);
  const leaves = (tree.length + 1) / 2;
  if (
    before.length !== tree.length ||
    beforeBytes[4] !== secretLength ||
    beforeBytes.length < HEADER_BYTES + leaves * size
  ) {
    writeSecretTree(w, tree);
    return;
  }
  w.raw(beforeBytes.subarray(0, HEADER_BYTES));
  let run = 0;
  const flush = (end: number): void => {
    if (end > run) w.raw(beforeBytes.subarray(HEADER_BYTES + run * size, HEADER_BYTES + end * size));
  };
  for (let leaf = 0; leaf < leaves; leaf++) {
    const node = leafAt(tree, leaf * 2);
    if (node === before[leaf * 2]) continue;
    flush(leaf);
    writeLeaf(w, node, secretLength);
    run = leaf + 1;
  }
  flush(leaves);
  writeUnused(w, tree);
}

function readRatchet(r: ByteReader, secretLength: number): GenerationSecret {
  return { secret: r.raw(secretLength), generation: r.u32(), unusedGenerations: {} };
}

export function readSecretTree(r: ByteReader): SecretTree {
  const nodes = r.u32();
  if (nodes % 2 !== 1 || nodes > MAX_NODES) throw new CodecError('stored secret tree has a bad width');
  const secretLength = r.u8();
  const tree: SecretTree = new Array<SecretTreeNode>(nodes);
  for (let node = 0; node < nodes; node++) {
    tree[node] =
      node % 2 === 0
        ? { handshake: readRatchet(r, secretLength), application: readRatchet(r, secretLength) }
        : PARENT_PLACEHOLDER;
  }
  for (let count = r.u32(); count > 0; count--) {
    const node = r.u32() * 2;
    const kind = r.u8();
    const generation = r.u32();
    const key = r.short();
    const leaf = node < nodes ? tree[node] : undefined;
    if (leaf === undefined || leaf === PARENT_PLACEHOLDER || kind > 1) {
      throw new CodecError('stored secret tree names a retained key of no leaf');
    }
    (kind === 0 ? leaf.handshake : leaf.application).unusedGenerations[generation] = key;
  }
  return tree;
}
