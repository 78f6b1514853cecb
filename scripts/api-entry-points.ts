/**
 * The public entry points: the source file behind each JavaScript target of package.json's
 * `exports` (./dist/x/y.js is built from x/y.ts), for `npm run docs` and the doc-comment check.
 * Read from package.json, so a rebuilt public entry point needs no change here.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface EntryPoint {
  /** The subpath users import, e.g. `relay-bot/framework/bot`. */
  specifier: string;
  /** The TypeScript source, absolute. */
  source: string;
}

type ExportTarget = string | null | { [condition: string]: ExportTarget };

/** The JavaScript files one `exports` value can resolve to (conditions included). */
function targetsOf(target: ExportTarget): string[] {
  if (target === null) return [];
  if (typeof target === 'string') return target.endsWith('.js') ? [target] : [];
  return Object.values(target).flatMap(targetsOf);
}

export function apiEntryPoints(root: string): EntryPoint[] {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, ExportTarget>;
  };
  const seen = new Set<string>();
  const out: EntryPoint[] = [];
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    for (const js of targetsOf(target)) {
      const source = path.join(root, js.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'));
      if (!existsSync(source)) throw new Error(`exports ${subpath}: ${js} has no source ${source}`);
      if (seen.has(source)) continue;
      seen.add(source);
      out.push({ specifier: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`, source });
    }
  }
  return out;
}
