/**
 * Sums self time per function and per file from a V8 .cpuprofile (what `--cpu-prof` writes, e.g.
 * BENCH_BOT_CPU_PROF=<dir> npm run bench -- bot), to compare profiles before and after a change:
 *
 *   npx tsx bench/bot-profile.ts <file.cpuprofile | dir> [top=15]
 *
 * Self time is the sampled time a function was on top of the stack; a directory sums all the
 * profiles in it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Shortens a file URL to what tells files apart: the part from node_modules/ or the repo folder. */
function shortFile(url: string): string {
  if (url === '') return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const repo = url.search(/\/(framework|bench|bots|plugins|cli|test)\//);
  return repo >= 0 ? url.slice(repo + 1) : url.replace(/^file:\/\//, '');
}

function add(into: Map<string, number>, key: string, micros: number): void {
  into.set(key, (into.get(key) ?? 0) + micros);
}

function summarise(
  profile: CpuProfile,
  byFunction: Map<string, number>,
  byFile: Map<string, number>,
): number {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  let total = 0;
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i] ?? 0;
    const frame = nodes.get(id)?.callFrame;
    if (!frame) return;
    total += micros;
    const file = shortFile(frame.url);
    add(byFunction, `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`, micros);
    add(byFile, file, micros);
  });
  return total;
}

function profilesAt(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(path, f));
}

function printTop(title: string, totals: Map<string, number>, total: number, top: number): void {
  console.log(`\n${title}`);
  const sorted = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, micros] of sorted) {
    console.log(
      `${(micros / 1000).toFixed(0).padStart(8)} ms ${((micros / total) * 100).toFixed(1).padStart(5)} %  ${key}`,
    );
  }
}

const [path, topArg] = process.argv.slice(2);
if (!path) {
  console.error('usage: tsx bench/bot-profile.ts <file.cpuprofile | dir> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 15);
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (const file of profilesAt(path)) {
  total += summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, byFunction, byFile);
}
console.log(`total sampled ${(total / 1000).toFixed(0)} ms`);
printTop(`top ${top} functions by self time`, byFunction, total, top);
printTop(`top ${top} files by self time`, byFile, total, top);
