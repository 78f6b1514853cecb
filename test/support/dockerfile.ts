/**
 * A Dockerfile read into stages and instructions, for the image check (test/image): continuation
 * lines joined, comments dropped, COPY's --from and exec-form JSON arrays understood. Only what
 * this project's Dockerfile uses; anything else is reported, so a new instruction cannot be
 * silently skipped.
 */
export type Instruction =
  | { op: 'WORKDIR'; path: string }
  | { op: 'RUN'; command: string }
  | { op: 'COPY'; from?: string; sources: string[]; dest: string }
  | { op: 'ENV'; vars: Record<string, string> }
  | { op: 'USER'; user: string }
  | { op: 'VOLUME'; paths: string[] }
  | { op: 'ENTRYPOINT' | 'CMD'; argv: string[] };

export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

export class DockerfileError extends Error {}

function logicalLines(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (current === '' && /^\s*(#.*)?$/.test(line)) continue;
    if (current !== '' && /^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    out.push((current + line).trim());
    current = '';
  }
  if (current !== '') out.push(current.trim());
  return out;
}

function execForm(op: string, rest: string): string[] {
  let argv: unknown;
  try {
    argv = JSON.parse(rest);
  } catch {
    throw new DockerfileError(`${op} ${rest}: only the exec form (a JSON array) is supported`);
  }
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) {
    throw new DockerfileError(`${op} ${rest}: not an array of strings`);
  }
  return argv;
}

function parseEnv(rest: string): Record<string, string> {
  const vars: Record<string, string> = {};
  const pairs = [...rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)];
  if (pairs.length === 0) throw new DockerfileError(`ENV ${rest}: use ENV NAME=value`);
  for (const [, k, v] of pairs) vars[k!] = v!.startsWith('"') ? (JSON.parse(v!) as string) : v!;
  return vars;
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const line of logicalLines(text)) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new DockerfileError(`cannot read: ${line}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!f) throw new DockerfileError(`FROM ${rest}`);
      stages.push({ image: f[1]!, ...(f[2] ? { name: f[2] } : {}), instructions: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) throw new DockerfileError(`${op} before FROM`);
    const add = (i: Instruction): void => void stage.instructions.push(i);
    switch (op) {
      case 'WORKDIR':
        add({ op, path: rest });
        break;
      case 'RUN':
        add({ op, command: rest });
        break;
      case 'COPY': {
        const words = rest.split(/\s+/);
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          const fm = /^--from=(.+)$/.exec(flag);
          if (!fm) throw new DockerfileError(`COPY ${flag} is not supported`);
          from = fm[1];
        }
        if (words.length < 2) throw new DockerfileError(`COPY ${rest}: needs a source and a destination`);
        add({
          op,
          ...(from !== undefined ? { from } : {}),
          sources: words.slice(0, -1),
          dest: words[words.length - 1]!,
        });
        break;
      }
      case 'ENV':
        add({ op, vars: parseEnv(rest) });
        break;
      case 'USER':
        add({ op, user: rest });
        break;
      case 'VOLUME':
        add({ op, paths: rest.startsWith('[') ? execForm(op, rest) : rest.split(/\s+/) });
        break;
      case 'ENTRYPOINT':
      case 'CMD':
        add({ op, argv: execForm(op, rest) });
        break;
      default:
        throw new DockerfileError(
          `${op} is not supported by the image check: teach test/support/dockerfile.ts`,
        );
    }
  }
  if (stages.length === 0) throw new DockerfileError('no FROM');
  return stages;
}

/** The commands of a RUN, split at top-level `&&` (no quoting in this project's Dockerfile). */
export function runSteps(command: string): string[] {
  if (/[;|'"`$]/.test(command.replace(/&&/g, ''))) {
    throw new DockerfileError(`RUN ${command}: only plain commands joined by && are supported`);
  }
  return command
    .split('&&')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
