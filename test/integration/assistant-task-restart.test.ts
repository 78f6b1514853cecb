/**
 * Issue #14: the assistant bot runs a long job as a task that survives a restart. `/research` goes
 * to the fake model server, whose slow answer makes the task report progress; the bot process is
 * killed with SIGKILL mid-answer and started again on the same Postgres schema; the task resumes
 * (the model is asked again) and completes with the whole report, which the requester sees as the
 * task's one final state.
 */
import { RESEARCH_PROMPT } from '../../bots/assistant/index.js';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, sleep, startChild, type Child } from '../support/child.js';
import { FakeModelServer } from '../support/fake-model-server.js';
import { postgresForTests } from '../support/postgres.js';

type Task = { id: string; replyTo: string; state: string; content: string };

const pgUp = await postgresForTests('assistant task restart');
let broker: TestBroker;
let server: FakeModelServer;

beforeAll(async () => {
  broker = await getTestBroker();
  server = await FakeModelServer.start();
});

afterAll(async () => {
  await server?.close();
  await broker?.close();
});

async function eventually(check: () => boolean, what: () => string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(25);
  }
}

const FINAL = new Set(['completed', 'failed', 'canceled']);

(pgUp ? test : test.skip)(
  'a /research task survives a SIGKILL restart of the assistant and completes',
  async () => {
    await onPostgres(async (env) => {
      const childEnv = {
        ...env,
        RELAY_BROKER_URL: broker.url,
        RELAY_PREFIX: uniqueName('assistant-task'),
        RELAY_ASSISTANT_URL: server.baseUrl,
        RELAY_ASSISTANT_MODEL: 'fake',
      };
      let child: Child = await startChild('assistant-child.ts', childEnv);
      const botId = child.userId;
      const peer = await RelayClient.create({
        store: new MemoryRelayStore(),
        broker: { url: broker.url },
        topicPrefix: childEnv.RELAY_PREFIX,
        powBits: 8,
      });
      const got: ReceivedMessage[] = [];
      peer.on('message', (m) => {
        if (m.from === botId && m.content.type === 'task') got.push(m);
      });
      await peer.start();
      try {
        // The first answer is slow (killed in the middle); the resumed run gets the second.
        server.reply({
          kind: 'answer',
          chunks: Array.from({ length: 60 }, (_, i) => `w${i} `),
          delayMs: 300,
        });
        const sent = await peer.send(botId, '/research the history of MLS');
        const log = (): Task[] =>
          got.map((m) => m.content as unknown as Task).filter((t) => t.replyTo === sent.id);
        await eventually(
          () => log().some((t) => t.content.startsWith('writing:')),
          () => JSON.stringify(log()),
        );
        await kill(child);
        expect(log().some((t) => FINAL.has(t.state))).toBe(false);
        const report = ['MLS ', 'began ', 'at the ', 'IETF.'];
        server.reply({ kind: 'answer', chunks: report, delayMs: 50 });
        child = await startChild('assistant-child.ts', childEnv);
        await eventually(
          () => log().some((t) => FINAL.has(t.state)),
          () => JSON.stringify(log()),
        );
        await sleep(1_000);
        const finals = log().filter((t) => FINAL.has(t.state));
        expect(finals).toHaveLength(1);
        expect(finals[0]).toMatchObject({ state: 'completed', content: report.join('') });
        expect(log()[0]).toMatchObject({ state: 'submitted' });
        expect(log().some((t) => t.content === 'resumed after a restart')).toBe(true);
        // Both runs asked the model for the same report.
        const asked = server.requests.map((r) => JSON.stringify(r.body?.messages));
        expect(asked.slice(-2).every((m) => m.includes(`${RESEARCH_PROMPT} the history of MLS`))).toBe(true);
        expect(peer.drops.get('mls')).toBe(0);
      } finally {
        await kill(child);
        await peer.stop();
      }
    });
  },
  // The restarted process waits for the broker to let go of the killed one's session (keepalive).
  180_000,
);
