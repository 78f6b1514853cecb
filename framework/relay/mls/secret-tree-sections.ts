/**
 * Lists of secret trees by epoch as group-state-parts.ts stores them: u8 count | count × section,
 * a section being u64 epoch | u32 length | the tree (secret-tree-codec.ts). The live part holds
 * the current epoch's tree, the epoch part the retained past epochs' trees.
 *
 * A write goes from a basis (the trees of the state the new one was made from, with the bytes of
 * their sections as stored): a tree that is the very object the basis had is copied from those
 * bytes; one that moved is written from the basis's encoding of it, so that only its changed
 * leaves are encoded; only a tree the basis never had is encoded whole.
 */
import type { SecretTree } from 'ts-mls/secretTree.js';
import { CodecError } from '../errors.js';
import { readSecretTree, writeSecretTree, writeSecretTreeFrom } from './secret-tree-codec.js';
import { ByteReader, type ByteWriter } from './session-bytes.js';

/** u64 epoch | u32 length, before each tree. */
const SECTION_HEADER_BYTES = 12;
const MAX_SECTIONS = 255;

/** A stored tree: the decoded object and its whole section as stored (header included). */
export interface StoredTree {
  readonly tree: SecretTree;
  readonly section: Uint8Array;
}

/** The trees a basis state holds with their stored sections, by epoch. */
export type StoredTrees = ReadonlyMap<bigint, StoredTree>;

/** Writes `trees` (epoch, tree) as a section list, from `basis` where it can. */
export function writeTreeSections(
  w: ByteWriter,
  trees: ReadonlyArray<readonly [bigint, SecretTree]>,
  basis?: StoredTrees,
): void {
  if (trees.length > MAX_SECTIONS) throw new CodecError('too many retained epochs for the session format');
  w.u8(trees.length);
  for (const [epoch, tree] of trees) {
    const old = basis?.get(epoch);
    if (old?.tree === tree) {
      w.raw(old.section);
      continue;
    }
    w.u64(epoch);
    w.withLength(() =>
      old
        ? writeSecretTreeFrom(w, tree, old.tree, old.section.subarray(SECTION_HEADER_BYTES))
        : writeSecretTree(w, tree),
    );
  }
}

/**
 * Each section of the list `r` is at, as the raw bytes of that section, by epoch: no tree is
 * decoded. `bytes` is what `r` reads (sections are views of it).
 */
export function sectionsAt(r: ByteReader, bytes: Uint8Array): Map<bigint, Uint8Array> {
  const sections = new Map<bigint, Uint8Array>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let count = r.u8(); count > 0; count--) {
    const start = r.position;
    r.skip(8);
    r.skip(r.u32());
    sections.set(view.getBigUint64(start, false), bytes.subarray(start, r.position));
  }
  return sections;
}

/**
 * Decodes the section list at `r` into `into`; a CodecError when an epoch's tree is already there
 * (two parts that both claim one epoch were not written together by us).
 */
export function readTreeSections(r: ByteReader, into: Map<bigint, SecretTree>): void {
  for (let count = r.u8(); count > 0; count--) {
    const epoch = r.u64();
    const section = new ByteReader(r.long(), 'group secret tree');
    if (into.has(epoch)) throw new CodecError(`group state holds two secret trees for epoch ${epoch}`);
    into.set(epoch, readSecretTree(section));
    section.end();
  }
}

/** Pairs the basis's trees with their sections; a tree without a section is left out. */
export function storedTrees(
  trees: ReadonlyArray<readonly [bigint, SecretTree]>,
  sections: ReadonlyMap<bigint, Uint8Array>,
): Map<bigint, StoredTree> {
  const out = new Map<bigint, StoredTree>();
  for (const [epoch, tree] of trees) {
    const section = sections.get(epoch);
    if (section !== undefined) out.set(epoch, { tree, section });
  }
  return out;
}
