/**
 * Task limits across replicas (`tasks:` perUser and total), on one Postgres store: two BotRuntimes,
 * each with its own LeaseKeeper (replicas A and B) and the store's leases as registry, get a task
 * request at the same moment. Each client commits a message only once both handlers have returned
 * (or after a fallback), so both count the rows before either's new row is committed: the window in
 * which both used to pass the check. Exactly one request may be admitted.
 *
 * The clients are a thin stand-in for RelayClient's transactional handler path (no MLS): a handler
 * transaction over the real store, the commit of its conversation data, then the 'message' event.
 */
import { EventEmitter } from 'node:events';
import {
  Bot,
  BotRuntime,
  OnCommand,
  TASK_LIMIT_TOTAL,
  TASK_LIMIT_USER,
  type AttachableClient,
  type TaskContext,
} from '../../framework/bot/index.js';
import type { ContentInput } from '../../framework/relay/content.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import { LeaseKeeper } from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { ALICE, CAROL, textMessage } from '../bot/helpers.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresForTests } from '../support/postgres.js';

const pgUp = await postgresForTests('task admission across replicas');
const run = pgUp ? test : test.skip;

/** Resolved at the end of each test: until then every task runs, and its row counts. */
let release: () => void = () => undefined;
let finish = Promise.resolve();

@Bot({ name: 'limited', typing: false })
class Limited {
  /** Runs until the test ends: its row stays unfinished and counts. */
  @OnCommand('job', { task: true })
  async job(ctx: TaskContext): Promise<string> {
    await Promise.race([finish, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
    return 'done';
  }
}

type Row = { conversationId: string; json: string };

/** RelayClient's handler path over the real store: run the handler, commit its data, emit 'message'. */
class StoreClient extends EventEmitter {
  readonly connected = true;
  private handler:
    | ((m: ReceivedMessage, reply: (r: string | ContentInput) => void, tx: unknown) => Promise<void>)
    | undefined;

  constructor(
    readonly userId: string,
    private readonly store: TypeOrmRelayStore,
  ) {
    super();
  }

  setMessageHandler(h: typeof this.handler): void {
    this.handler = h;
  }

  async send(_to: string, content: ContentInput, opts: { data?: Row[] } = {}): Promise<{ id: string }> {
    await this.store.commit({ conversationData: opts.data ?? [] });
    return { id: content.id ?? 'x' };
  }

  /** Runs the handler; commits once `commitGate` resolves. Resolves with the replies. */
  async deliver(m: ReceivedMessage, returned: () => void, commitGate: Promise<void>): Promise<string[]> {
    const replies: string[] = [];
    const data = new Map<string, string>();
    const tx = {
      loadData: async (id: string) => data.get(id) ?? (await this.store.getConversationData(id)),
      saveData: (id: string, json: string) => void data.set(id, json),
      groupChange: () => {
        throw new Error('no groups here');
      },
    };
    await this.handler!(m, (r) => replies.push(typeof r === 'string' ? r : r.content), tx);
    returned();
    await commitGate;
    await this.store.commit({
      conversationData: [...data].map(([conversationId, json]) => ({ conversationId, json })),
    });
    this.emit('message', m);
    return replies;
  }
}

async function replica(
  store: TypeOrmRelayStore,
  replicaId: string,
  limits: { perUser: number; total: number },
) {
  const keeper = new LeaseKeeper({ store: store.leases, replica: { replicaId }, ttlMs: 5_000 });
  keeper.on('error', () => undefined);
  await keeper.start();
  const runtime = new BotRuntime(new Limited(), { tasks: { ...limits, sweepMs: 200 } });
  const client = new StoreClient('b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0', store);
  runtime.attach(client as unknown as AttachableClient, {
    store,
    duties: keeper,
    replica: { replicaId, registry: store.leases },
  });
  return { keeper, runtime, client };
}

/** Both replicas get one request at once; returns each one's replies. */
async function atOnce(
  limits: { perUser: number; total: number },
  senders: [UserIdHex, UserIdHex],
): Promise<{ replies: string[][]; rows: number }> {
  finish = new Promise<void>((r) => (release = r));
  const schema = `relay_task_admit_${Math.random().toString(16).slice(2, 10)}`;
  await createPgSchema(schema);
  const store = new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
  const a = await replica(store, 'A', limits);
  const b = await replica(store, 'B', limits);
  try {
    let returnedCount = 0;
    let bothReturned!: () => void;
    const both = new Promise<void>((r) => (bothReturned = r));
    const returned = (): void => void (++returnedCount === 2 && bothReturned());
    // Commit once both handlers returned; a replica waiting on the other's admission cannot
    // return first, so the other commits after a fallback instead of waiting forever.
    const gate = Promise.race([both, new Promise<void>((r) => setTimeout(r, 2_000))]);
    const replies = await Promise.all([
      a.client.deliver(textMessage('/job', { from: senders[0] }), returned, gate),
      b.client.deliver(textMessage('/job', { from: senders[1] }), returned, gate),
    ]);
    const rows = (await store.listConversationData('tasks:limited:')).filter((r) => r.json !== 'null').length;
    return { replies, rows };
  } finally {
    release();
    for (const r of [a, b]) {
      await r.runtime.detach();
      await r.keeper.stop();
    }
    await store.close();
    await dropPgSchema(schema).catch(() => undefined);
  }
}

const submitted = (replies: string[]): boolean => replies.some((r) => r.includes('accepted'));

run(
  'total: two replicas accepting at the same moment admit one task, not two',
  async () => {
    const { replies, rows } = await atOnce({ perUser: 5, total: 1 }, [ALICE, CAROL as UserIdHex]);
    expect(replies.filter(submitted)).toHaveLength(1);
    expect(replies.flat()).toContain(TASK_LIMIT_TOTAL);
    expect(rows).toBe(1);
  },
  60_000,
);

run(
  'per user: one requester on two replicas at once gets one task, not two',
  async () => {
    const { replies, rows } = await atOnce({ perUser: 1, total: 10 }, [ALICE, ALICE]);
    expect(replies.filter(submitted)).toHaveLength(1);
    expect(replies.flat()).toContain(TASK_LIMIT_USER);
    expect(rows).toBe(1);
  },
  60_000,
);
