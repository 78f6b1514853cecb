/**
 * Runs the benchmark modules one after another: `npm run bench` for all, `npm run bench -- pow seal`
 * for some. Each module exports `async function run(): Promise<void>`. Modules are listed here rather
 * than discovered so the order is stable; one that does not exist yet is skipped with a note.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { performance } from 'node:perf_hooks';

const MODULES = ['pow', 'seal', 'mls', 'client', 'store', 'bot', 'replicas', 'group', 'hostile'] as const;

interface BenchModule {
  run(): Promise<void>;
}

function moduleUrl(name: string): URL | undefined {
  for (const ext of ['.ts', '.js']) {
    const url = new URL(`./${name}${ext}`, import.meta.url);
    if (existsSync(url)) return url;
  }
  return undefined;
}

async function main(args: readonly string[]): Promise<number> {
  const unknown = args.filter((a) => !(MODULES as readonly string[]).includes(a));
  if (unknown.length > 0) {
    console.error(`unknown bench module(s): ${unknown.join(', ')}; known: ${MODULES.join(', ')}`);
    return 2;
  }
  const selected = args.length > 0 ? args : MODULES;
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  console.log(`relay-bot bench · node ${process.version} · ${availableParallelism()} cores · ${cpu}`);
  let failures = 0;
  for (const name of selected) {
    const url = moduleUrl(name);
    if (!url) {
      console.log(`\n[${name}] skipped: bench/${name}.ts does not exist yet`);
      continue;
    }
    console.log(`\n[${name}]`);
    const start = performance.now();
    try {
      const mod = (await import(url.href)) as Partial<BenchModule>;
      if (typeof mod.run !== 'function') throw new Error(`bench/${name} exports no run()`);
      await mod.run();
      console.log(`[${name}] done in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    } catch (error) {
      failures++;
      console.error(`[${name}] failed:`, error);
    }
  }
  return failures > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
