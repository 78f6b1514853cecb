/**
 * Our storage encoding of a ts-mls secret tree (RFC 9420 §9): the leaves' handshake and
 * application ratchets only. It is written on every group message, so it is a flat loop over a
 * growing buffer rather than ts-mls's combinator encoder (about 0.45 ms for a 100-member tree).
 *
 * ts-mls derives a ratchet pair for every node, parents included, but only ever reads a leaf's
 * (messageProtection.js: `secretTree[leafToNodeIndex(leaf)]`). The parents' pairs are secrets
 * nothing uses, so they are not stored; a decoded tree holds PARENT_PLACEHOLDER there, whose empty
 * secrets could derive no key if ts-mls ever did read one.
 *
 * Layout: u32 node count (odd), then per leaf node (even index) handshake and application, each
 *   u8 length | secret | u32 generation | u8 count | count × (u32 generation | u8 length | key)
 */
import type { GenerationSecret, SecretTree, SecretTreeNode } from 'ts-mls/secretTree.js';
import { CodecError } from '../errors.js';
import type { ByteReader, ByteWriter } from './session-bytes.js';

/** 2^16 leaves, far above the group cap (PROTOCOL.md §9: 250); bounds a corrupt count. */
const MAX_NODES = 2 * 65536 - 1;

const EMPTY_RATCHET: GenerationSecret = Object.freeze({
  secret: new Uint8Array(0),
  generation: 0,
  unusedGenerations: Object.freeze({}) as Record<number, Uint8Array>,
});

export const PARENT_PLACEHOLDER: SecretTreeNode = Object.freeze({
  handshake: EMPTY_RATCHET,
  application: EMPTY_RATCHET,
});

function writeRatchet(w: ByteWriter, g: GenerationSecret): void {
  w.short(g.secret);
  w.u32(g.generation);
  const unused = Object.entries(g.unusedGenerations);
  if (unused.length > 255) throw new CodecError('too many retained generations for the session format');
  w.u8(unused.length);
  for (const [generation, key] of unused) {
    w.u32(Number(generation));
    w.short(key);
  }
}

function readRatchet(r: ByteReader): GenerationSecret {
  const secret = r.short();
  const generation = r.u32();
  const count = r.u8();
  const unusedGenerations: Record<number, Uint8Array> = {};
  for (let i = 0; i < count; i++) {
    const g = r.u32();
    unusedGenerations[g] = r.short();
  }
  return { secret, generation, unusedGenerations };
}

export function writeSecretTree(w: ByteWriter, tree: SecretTree): void {
  w.u32(tree.length);
  for (let node = 0; node < tree.length; node += 2) {
    const leaf = tree[node];
    if (leaf === undefined) throw new CodecError('secret tree without a leaf node');
    writeRatchet(w, leaf.handshake);
    writeRatchet(w, leaf.application);
  }
}

export function readSecretTree(r: ByteReader): SecretTree {
  const nodes = r.u32();
  if (nodes % 2 !== 1 || nodes > MAX_NODES) throw new CodecError('stored secret tree has a bad width');
  const tree: SecretTree = new Array<SecretTreeNode>(nodes);
  for (let node = 0; node < nodes; node++) {
    tree[node] =
      node % 2 === 0 ? { handshake: readRatchet(r), application: readRatchet(r) } : PARENT_PLACEHOLDER;
  }
  return tree;
}
