/**
 * How the person reading the start banner runs this CLI from their shell, so the commands it shows
 * work as printed: `npm run relay-bot --` in a checkout (no bin is linked there), `npx relay-bot` in
 * a project that installed the package, `relay-bot` when the bin is on PATH (global install, image).
 */
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface InvocationFacts {
  /** realpath of the running CLI entry (cli/main.ts from source, dist/cli/main.js when built). */
  mainFile: string;
  /** The PATH the user's shell would search. */
  pathEnv: string;
  /** realpath of the executable at that path, or undefined when there is none. */
  executableAt(file: string): string | undefined;
}

/**
 * npm adds every node_modules/.bin above the working directory to PATH for `npm run` and `npx`;
 * the shell the user types into does not have them.
 */
function isNpmBinDir(dir: string): boolean {
  return path.basename(dir) === '.bin' && path.basename(path.dirname(dir)) === 'node_modules';
}

/** The command prefix to print: `relay-bot`, `npx relay-bot` or `npm run relay-bot --`. */
export function cliCommand(facts: InvocationFacts): string {
  for (const dir of facts.pathEnv.split(path.delimiter)) {
    if (dir === '' || isNpmBinDir(dir)) continue;
    if (facts.executableAt(path.join(dir, 'relay-bot')) === facts.mainFile) return 'relay-bot';
  }
  if (facts.mainFile.split(path.sep).includes('node_modules')) return 'npx relay-bot';
  return 'npm run relay-bot --';
}

/** realpath of the executable file at that path, or undefined. */
export function executableAt(file: string): string | undefined {
  try {
    accessSync(file, constants.X_OK);
    return realpathSync(file);
  } catch {
    return undefined;
  }
}

/** cliCommand() for this process: main.ts or main.js beside this file. */
export function currentCliCommand(): string {
  const here = fileURLToPath(import.meta.url);
  const main = path.join(path.dirname(here), `main${path.extname(here)}`);
  return cliCommand({
    mainFile: existsSync(main) ? realpathSync(main) : main,
    pathEnv: process.env.PATH ?? '',
    executableAt,
  });
}
