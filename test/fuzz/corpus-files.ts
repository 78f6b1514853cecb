/** The checked-in fuzz inputs of a target (test/fuzz/corpus/<target>/*.bin), in name order. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CORPUS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

export function corpusFiles(target: string): Uint8Array[] {
  const dir = join(CORPUS_DIR, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => new Uint8Array(readFileSync(join(dir, f))));
}
