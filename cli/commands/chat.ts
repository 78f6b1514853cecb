/**
 * `relay-bot chat <user_id…>`: an interactive terminal client with the CLI's own identity and
 * sessions (client.database). Lines are sent to the current peer; `/peers`, `/switch <id>`,
 * `/add <id>` and `/quit` are local, `//text` sends `/text`. Incoming messages are printed above the
 * line being typed. With stdin from a pipe it sends each line and exits at EOF after a drain period.
 */
import readline from 'node:readline';
import type { Argv } from 'yargs';
import type { RelayClient } from '../../framework/relay/index.js';
import { loadConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { createClient, makeLogger, openStore, parseUserId, sleep } from '../runtime.js';

export interface ChatArgs {
  config?: string;
  user_id?: string[];
  wait?: number;
}

export const DEFAULT_DRAIN_SECONDS = 3;

export const command = 'chat <user_id..>';
export const describe = 'Talk to one or more users interactively (or from a pipe)';
export const builder = (y: Argv): Argv<ChatArgs> =>
  y
    .positional('user_id', { type: 'string', array: true, describe: '32-hex user ids; the first is current' })
    .option('wait', {
      type: 'number',
      describe: `with piped input: seconds to keep printing replies after EOF (default ${DEFAULT_DRAIN_SECONDS})`,
    })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' }) as Argv<ChatArgs>;

const short = (id: string): string => id.slice(0, 8);

const HELP = [
  'commands: /peers  /switch <id|prefix|number>  /add <id>  /quit   (//text sends /text)',
  'anything else is sent to the current peer',
].join('\n');

class Chat {
  readonly peers: string[];
  current: string;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: RelayClient,
    peers: string[],
    private readonly print: (line: string) => void,
  ) {
    this.peers = [...new Set(peers)];
    this.current = this.peers[0]!;
  }

  /** Finds a peer by full id, unique prefix or 1-based number in /peers. */
  private find(ref: string): string | undefined {
    const n = Number(ref);
    if (Number.isInteger(n) && n >= 1 && n <= this.peers.length && ref.length < 4) return this.peers[n - 1];
    const hits = this.peers.filter((p) => p.startsWith(ref.toLowerCase()));
    return hits.length === 1 ? hits[0] : undefined;
  }

  incoming(from: string, text: string): void {
    if (!this.peers.includes(from)) this.peers.push(from);
    this.print(`[${short(from)}] ${text}`);
  }

  /** Returns false for /quit. */
  line(input: string): boolean {
    const line = input.replace(/\r$/, '');
    if (line.trim().length === 0) return true;
    const [word, ...rest] = line.trim().split(/\s+/);
    switch (word) {
      case '/quit':
      case '/exit':
        return false;
      case '/peers':
        this.peers.forEach((p, i) => this.print(`${p === this.current ? '*' : ' '} ${i + 1}. ${p}`));
        return true;
      case '/switch': {
        const target = rest[0] === undefined ? undefined : this.find(rest[0]);
        if (!target) this.print(`no such peer: ${rest[0] ?? '(none given)'}; see /peers`);
        else {
          this.current = target;
          this.print(`now talking to ${target}`);
        }
        return true;
      }
      case '/add': {
        try {
          const id = parseUserId(rest[0]);
          if (!this.peers.includes(id)) this.peers.push(id);
          this.current = id;
          this.print(`now talking to ${id}`);
        } catch (e) {
          this.print((e as Error).message);
        }
        return true;
      }
      case '/chathelp':
        this.print(HELP);
        return true;
      default:
        break;
    }
    const text = line.startsWith('//') ? line.slice(1) : line;
    const to = this.current;
    // In order, one at a time: the first message to a peer makes first contact.
    this.chain = this.chain.then(() =>
      this.client.send(to, text).then(
        () => undefined,
        (e: Error) => this.print(`! not sent to ${short(to)}: ${e.message}`),
      ),
    );
    return true;
  }

  idle(): Promise<void> {
    return this.chain;
  }
}

export async function handler(argv: ChatArgs): Promise<void> {
  const ids = (argv.user_id ?? []).map((v) => parseUserId(v));
  if (ids.length === 0)
    throw new UsageError('chat needs at least one user id. Fix: relay-bot chat <user_id>');
  const wait = argv.wait ?? DEFAULT_DRAIN_SECONDS;
  if (!Number.isFinite(wait) || wait < 0) {
    throw new UsageError(`--wait ${String(argv.wait)} is not a number of seconds. Fix: e.g. --wait 5`);
  }
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const log = makeLogger(config, process.env.RELAY_LOG_LEVEL ?? 'warn');
  const { store } = await openStore(config, 'client', log);
  const client = await createClient(config, 'client', store, log);
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  let rl: readline.Interface | undefined;
  const print = (line: string): void => {
    if (!interactive) {
      process.stdout.write(`${line}\n`);
      return;
    }
    // Above the line being typed: clear it, print, redraw the prompt and the partial input.
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    process.stdout.write(`${line}\n`);
    rl?.prompt(true);
  };
  const chat = new Chat(client, ids, (line) => print(line));
  const setPrompt = (): void => rl?.setPrompt(`${short(chat.current)}> `);
  client.on('message', (m) => {
    chat.incoming(m.from, m.content.content);
    if (interactive) setPrompt();
  });
  client.on('error', (e) => log.error({ err: e }, 'relay client error'));
  try {
    await client.start();
    // Created only now: readline starts reading at once, and piped lines must not arrive first.
    const lines = readline.createInterface({
      input: process.stdin,
      ...(interactive ? { output: process.stdout, prompt: '' } : {}),
      terminal: interactive,
    });
    rl = lines;
    if (interactive) {
      print(`you are ${client.userId}; talking to ${chat.current}`);
      print(HELP);
      setPrompt();
      lines.prompt();
    }
    await new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        if (!chat.line(line)) {
          lines.close();
          return;
        }
        if (interactive) {
          setPrompt();
          lines.prompt();
        }
      });
      lines.on('close', resolve);
    });
    await chat.idle();
    // Replies to the last lines are still on their way.
    if (!interactive) await sleep(wait * 1000);
  } finally {
    rl?.close();
    await client.stop().catch(() => undefined);
    await store.close();
  }
}
