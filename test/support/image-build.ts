/**
 * Builds what a Dockerfile describes into a directory instead of an image, for machines without a
 * Docker engine (test/image). Each stage gets a root directory; the image's absolute paths (/app,
 * /data, /config, /usr/local/bin) are that root's subdirectories, in COPY, WORKDIR, RUN, the
 * entrypoint and its arguments. `FROM node:<major>-…` provides that Node (from the npm registry,
 * scripts/node-line.sh) as /usr/local/bin/node. RUN steps run in order with bash, except the apt
 * housekeeping, whose packages must be installed on this machine instead; chown maps the image's
 * users to this machine's (a user it lacks becomes `nobody`).
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { DockerfileError, runSteps, type Stage } from './dockerfile.js';

export interface ImageUser {
  name: string;
  uid: number;
  gid: number;
}

export interface BuiltImage {
  /** The last stage's root directory. */
  root: string;
  /** An image path (absolute, or relative to the final WORKDIR) as a path on this machine. */
  map(imagePath: string): string;
  /** ENTRYPOINT + CMD, the program resolved on the image's PATH, absolute arguments mapped. */
  argv: string[];
  /** ENV of the final stage, with PATH set to the image's directories first. */
  env: Record<string, string>;
  user: ImageUser;
  workdir: string;
  volumes: string[];
}

export interface BuildOptions {
  stages: Stage[];
  /** The build context (COPY sources). */
  context: string;
  /** Where the stage roots are made. */
  into: string;
  /** The Node installation (bin/node, include/node) for `FROM node:<major>`, by major. */
  nodeFor(major: number): { nodeDir: string; env: Record<string, string> };
  log(line: string): void;
}

/** Docker's default PATH, for the image when no ENV PATH is set. */
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function hostUser(name: string): ImageUser {
  const id = (flag: string, who: string): number | undefined => {
    const r = spawnSync('id', [flag, who], { encoding: 'utf8' });
    return r.status === 0 ? Number(r.stdout.trim()) : undefined;
  };
  const uid = id('-u', name);
  if (uid !== undefined) return { name, uid, gid: id('-g', name)! };
  return { name: 'nobody', uid: id('-u', 'nobody')!, gid: id('-g', 'nobody')! };
}

function run(
  command: string,
  cwd: string,
  env: Record<string, string>,
  log: (l: string) => void,
): Promise<void> {
  log(`$ ${command}`);
  const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve, reject) =>
    child.once('close', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`RUN step \`${command}\` exited with ${code}:\n${output.slice(-4000)}`)),
    ),
  );
}

/** apt-get install's packages must be on this machine (dpkg says installed). */
function checkAptPackages(step: string): void {
  const words = step.split(/\s+/);
  if (words[1] !== 'install') return;
  for (const pkg of words.slice(2).filter((w) => !w.startsWith('-'))) {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
    if (!r.stdout.includes('install ok installed')) {
      throw new Error(
        `the Dockerfile installs ${pkg} with apt-get; install it here too: apt-get install ${pkg}`,
      );
    }
  }
}

function chownStep(step: string, map: (p: string) => string): void {
  const words = step.split(/\s+/).slice(1);
  const recursive = words[0] === '-R';
  if (recursive) words.shift();
  const [spec, ...targets] = words;
  const [userName, groupName] = spec!.split(':');
  const user = hostUser(userName!);
  const gid = groupName === undefined ? user.gid : hostUser(groupName).gid;
  const apply = (p: string): void => {
    chownSync(p, user.uid, gid);
    if (recursive && statSync(p).isDirectory()) for (const c of readdirSync(p)) apply(path.join(p, c));
  };
  for (const t of targets) apply(map(t));
}

function hostEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      v !== undefined &&
      k !== 'NODE_OPTIONS' &&
      !k.startsWith('npm_lifecycle') &&
      !k.startsWith('npm_package')
    )
      env[k] = v;
  }
  return env;
}

export async function buildImage(opts: BuildOptions): Promise<BuiltImage> {
  const roots = new Map<string, string>();
  let last: BuiltImage | undefined;
  for (const [index, stage] of opts.stages.entries()) {
    const root = path.join(opts.into, `stage-${index}${stage.name ? `-${stage.name}` : ''}`);
    mkdirSync(root, { recursive: true });
    if (stage.name) roots.set(stage.name, root);
    roots.set(String(index), root);
    const nodeMajor = /^node:(\d+)(?:[-.]|$)/.exec(stage.image)?.[1];
    if (!nodeMajor)
      throw new DockerfileError(`FROM ${stage.image}: the image check provides only node:<major> images`);
    const { nodeDir, env: nodeEnv } = opts.nodeFor(Number(nodeMajor));
    // The base image's Node, where the official images have it.
    mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
    copyFileSync(path.join(nodeDir, 'bin', 'node'), path.join(root, 'usr/local/bin/node'));
    chmodSync(path.join(root, 'usr/local/bin/node'), 0o755);

    let workdir = '/';
    const map = (p: string): string => path.join(root, path.posix.resolve(workdir, p));
    const vars: Record<string, string> = {};
    let user = hostUser('root');
    const volumes: string[] = [];
    let entrypoint: string[] = [];
    let cmd: string[] = [];
    const imagePath = (): string => vars.PATH ?? IMAGE_PATH;
    const buildEnv = (): Record<string, string> => ({
      // A build reaches the registry as this machine does (proxy, CA settings); not the test
      // runner's NODE_OPTIONS.
      ...hostEnv(),
      ...nodeEnv,
      ...vars,
      // The image's directories first (its node), then this machine's tools (npm, bash, the compiler).
      PATH: [
        ...imagePath()
          .split(':')
          .map((d) => path.join(root, d)),
        process.env.PATH ?? '/usr/bin:/bin',
      ].join(':'),
      HOME: process.env.HOME ?? '/root',
    });

    for (const ins of stage.instructions) {
      switch (ins.op) {
        case 'WORKDIR':
          workdir = path.posix.resolve(workdir, ins.path);
          mkdirSync(map(workdir), { recursive: true });
          break;
        case 'ENV':
          Object.assign(vars, ins.vars);
          break;
        case 'USER':
          user = hostUser(ins.user);
          break;
        case 'VOLUME':
          volumes.push(...ins.paths);
          break;
        case 'ENTRYPOINT':
          entrypoint = ins.argv;
          break;
        case 'CMD':
          cmd = ins.argv;
          break;
        case 'COPY': {
          const fromRoot = ins.from === undefined ? undefined : roots.get(ins.from);
          if (ins.from !== undefined && !fromRoot)
            throw new DockerfileError(`COPY --from=${ins.from}: no such stage`);
          const intoDir = ins.dest.endsWith('/') || ins.sources.length > 1;
          for (const source of ins.sources) {
            const src = fromRoot
              ? path.join(fromRoot, path.posix.resolve('/', source))
              : path.join(opts.context, source);
            if (!existsSync(src)) throw new Error(`COPY ${source}: ${src} does not exist`);
            const dest =
              intoDir && !statSync(src).isDirectory()
                ? path.join(map(ins.dest), path.basename(src))
                : map(ins.dest);
            mkdirSync(path.dirname(dest), { recursive: true });
            opts.log(`COPY ${source} -> ${dest}`);
            cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
          }
          break;
        }
        case 'RUN':
          for (const step of runSteps(ins.command)) {
            if (/^apt-get\s/.test(step)) checkAptPackages(step);
            else if (/^rm -rf \/var\/lib\/apt\//.test(step)) continue;
            else if (/^chown\s/.test(step)) chownStep(step, map);
            else {
              // Absolute image paths become the stage root's.
              const mapped = step.replace(
                /(^|\s)(\/[^\s]*)/g,
                (_all, space: string, p: string) => `${space}${map(p)}`,
              );
              await run(mapped, map(workdir), buildEnv(), opts.log);
            }
          }
          break;
      }
    }
    const argv = [...entrypoint, ...cmd];
    if (argv.length > 0) {
      const program = imagePath()
        .split(':')
        .map((d) => path.join(root, d, argv[0]!))
        .find((p) => existsSync(p));
      if (!program) throw new Error(`${argv[0]} is not on the image's PATH (${imagePath()})`);
      argv[0] = program;
      for (let i = 1; i < argv.length; i++) if (argv[i]!.startsWith('/')) argv[i] = map(argv[i]!);
    }
    const env = buildEnv();
    last = { root, map, argv, env: { ...vars, PATH: env.PATH! }, user, workdir, volumes };
  }
  // Stage roots must be reachable by the image's non-root user, as / is in a container.
  chmodSync(opts.into, 0o755);
  return last!;
}
