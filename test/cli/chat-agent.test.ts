/**
 * `relay-bot chat` (the real CLI, a subprocess with piped stdin) against an agent bot through a real
 * broker (Mosquitto when it answers, else the embedded one): what the chat prints for typing,
 * streams (a pipe prints only the final text), reactions both ways, edits, deletes, unknown types,
 * actions with /choose, tasks with /cancel, and /profile, in a 1:1 conversation and in a group.
 * The bot runs in this process on BotRuntime; `task` content is posted through its relay client
 * (the bot API has no tasks here yet).
 */
import {
  Bot,
  BotRuntime,
  OnAction,
  OnCommand,
  OnReaction,
  type BotContext,
} from '../../framework/bot/index.js';
import {
  MemoryRelayStore,
  RelayClient,
  type ContentInput,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { CliChat } from './cli-chat.js';
import { tempDir } from './helpers.js';

const POW_BITS = 8;
const short = (id: string): string => id.slice(0, 8);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Where = ReceivedMessage['conversation'];

/** Posts to where a message came from, through the bot's own client (tasks are not in the bot API). */
let post: (to: Where, content: ContentInput) => Promise<void> = async () => undefined;
/** Running tasks of /job: the task id and the request it answers. */
const jobs = new Map<string, string>();

async function* story(): AsyncIterable<string> {
  for (const part of ['Once ', 'upon ', 'a time.']) {
    await sleep(400);
    yield part;
  }
}

@Bot({ name: 'agent', description: 'an agent for the chat test' })
class AgentBot {
  @OnCommand('slow', { description: 'thinks, then answers' })
  async slow(ctx: BotContext): Promise<void> {
    await ctx.typing();
    await sleep(300);
    ctx.reply('done thinking');
  }

  @OnCommand('story', { args: '[topic...]', description: 'streams a story' })
  async story(ctx: BotContext): Promise<void> {
    await ctx.stream(story());
  }

  @OnCommand('like')
  like(ctx: BotContext): void {
    ctx.react('👍');
  }

  @OnCommand('fix')
  fix(ctx: BotContext): void {
    ctx.edit(ctx.reply('teh answer'), 'the answer');
  }

  @OnCommand('oops')
  oops(ctx: BotContext): void {
    ctx.delete(ctx.reply('secret'));
  }

  @OnCommand('poll')
  poll(ctx: BotContext): void {
    ctx.reply({ type: 'poll', content: 'a poll, as text' });
  }

  @OnCommand('menu')
  menu(ctx: BotContext): void {
    ctx.actions('Pick a colour', [
      { id: 'red', label: 'Red' },
      { id: 'blue', label: 'Blue' },
    ]);
  }

  @OnAction()
  chosen(ctx: BotContext): void {
    ctx.reply(`you chose ${ctx.action!.id}`);
  }

  @OnReaction()
  reacted(ctx: BotContext): void {
    ctx.reply(`thanks for ${ctx.reaction!.emoji}`);
  }

  /** submitted, working 50%, then canceled when the requester asks (see the task-cancel listener). */
  @OnCommand('job')
  job(ctx: BotContext): void {
    const m = ctx.message!;
    const task = { type: 'task' as const, id: `job-${m.content.id}`, replyTo: m.content.id ?? '' };
    jobs.set(task.id, task.replyTo);
    setTimeout(() => {
      void post(m.conversation, { ...task, state: 'submitted' as const, content: 'queued' }).then(() =>
        post(m.conversation, { ...task, state: 'working' as const, content: 'halfway', progress: 0.5 }),
      );
    }, 50);
  }

  @OnCommand('quickjob')
  quickjob(ctx: BotContext): void {
    const m = ctx.message!;
    const task = { type: 'task' as const, id: `quick-${m.content.id}`, replyTo: m.content.id ?? '' };
    setTimeout(() => {
      void post(m.conversation, { ...task, state: 'submitted' as const, content: '' }).then(() =>
        post(m.conversation, { ...task, state: 'completed' as const, content: 'result 42' }),
      );
    }, 50);
  }
}

let broker: TestBroker;
let prefix: string;
let bot: { client: RelayClient; runtime: BotRuntime } | undefined;
let cancels: string[] = [];

async function startAgent(): Promise<RelayClient> {
  const runtime = new BotRuntime(new AgentBot());
  const client = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: POW_BITS,
    profile: runtime.profile,
    groups: { commitDelayMs: 100 },
  });
  await client.start();
  runtime.attach(client);
  bot = { client, runtime };
  post = async (to, content) => {
    if (to.kind === 'group') await client.sendToGroup(to.groupId, content);
    else await client.send(to.id, content);
  };
  client.on('message', (m) => {
    if (m.content.type !== 'task-cancel') return;
    cancels.push(m.content.replyTo as string);
    void post(m.conversation, {
      type: 'task',
      id: m.content.replyTo as string,
      replyTo: jobs.get(m.content.replyTo as string) ?? 'unknown',
      state: 'canceled',
      content: 'stopped',
    } as ContentInput);
  });
  return client;
}

beforeAll(async () => {
  broker = await getTestBroker();
});
beforeEach(() => {
  prefix = uniqueName('chat-agent');
  cancels = [];
});
afterEach(async () => {
  if (bot) {
    await bot.runtime.stop().catch(() => undefined);
    await bot.client.stop().catch(() => undefined);
  }
  bot = undefined;
});
afterAll(async () => {
  await broker.close();
});

test('1:1: typing, a stream, reactions, edit, delete, an unknown type, /choose, tasks with /cancel, /profile', async () => {
  const agent = await startAgent();
  const b = `\\[${short(agent.userId)}\\]`;
  const tmp = await tempDir('relay-chat-agent-');
  const chat = new CliChat([agent.userId, '--wait', '1'], tmp.dir, {
    brokerUrl: broker.url,
    prefix,
    powBits: POW_BITS,
  });
  try {
    let mark = chat.type('/slow');
    await chat.waitFor(new RegExp(`^${b} is typing…$`), mark);
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${b} done thinking$`), mark);

    // On a pipe a stream prints only its final text, once.
    mark = chat.type('/story');
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${b} Once upon a time\\.$`), mark);
    await sleep(500);
    expect(chat.lines.filter((l) => l.includes('Once'))).toHaveLength(1);

    const like = await chat.send('/like');
    await chat.waitFor(new RegExp(`^${b} reacted 👍 to \\(${like}\\) "/like"$`));

    mark = chat.type('/fix');
    const fixed = (await chat.waitFor(new RegExp(`^\\((\\d+)\\) ${b} teh answer$`), mark))[1];
    await chat.waitFor(new RegExp(`^\\(${fixed}\\) ${b} edited: the answer \\(was "teh answer"\\)$`), mark);

    mark = chat.type('/oops');
    const oops = (await chat.waitFor(new RegExp(`^\\((\\d+)\\) ${b} secret$`), mark))[1];
    await chat.waitFor(new RegExp(`^${b} deleted \\(${oops}\\) "secret"$`), mark);

    mark = chat.type('/poll');
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${b} a poll, as text$`), mark);

    // Our reaction to the bot's (edited) message reaches its @OnReaction.
    mark = chat.type(`/react ${fixed} 🎉`);
    await chat.waitFor(new RegExp(`^reacted 🎉 to \\(${fixed}\\) "the answer"$`), mark);
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${b} thanks for 🎉$`), mark);

    mark = chat.type('/menu');
    const menu = (await chat.waitFor(new RegExp(`^\\((\\d+)\\) ${b} Pick a colour$`), mark))[1];
    await chat.waitFor(/^ {4}2\. Blue$/, mark);
    mark = chat.type('/choose 2');
    await chat.waitFor(new RegExp(`^chose "Blue" on \\(${menu}\\) "Pick a colour"$`), mark);
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${b} you chose blue$`), mark);

    mark = chat.type('/job');
    const job = (
      await chat.waitFor(new RegExp(`^\\((\\d+)\\) ${b} task submitted: queued {2}\\(/cancel \\d+`), mark)
    )[1];
    await chat.waitFor(new RegExp(`^\\(${job}\\) ${b} task working 50%: halfway$`), mark);
    mark = chat.type(`/cancel ${job}`);
    await chat.waitFor(new RegExp(`^asked to cancel task \\(${job}\\)$`), mark);
    await chat.waitFor(new RegExp(`^\\(${job}\\) ${b} task canceled: stopped$`), mark);
    expect(cancels).toEqual([expect.stringMatching(/^job-/)]);

    mark = chat.type('/quickjob');
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${b} task completed: result 42$`), mark);

    mark = chat.type('/profile');
    await chat.waitFor(new RegExp(`^${agent.userId}: a bot \\(signed profile\\)$`), mark);
    await chat.waitFor(/^ {2}an agent for the chat test$/, mark);
    await chat.waitFor(/^ {2}\/story \[topic.*\] {2}streams a story$/, mark);
    await chat.waitFor(/^ {2}\/slow {2}thinks, then answers$/, mark);

    const { code, stderr } = await chat.end();
    expect(stderr).not.toContain('relay-bot:');
    expect(code).toBe(0);
    expect(chat.lines.filter((l) => l.startsWith('!'))).toEqual([]);
    expect(agent.drops.get('content_sender')).toBe(0);
  } finally {
    chat.kill();
    await tmp.remove();
  }
}, 180_000);

test('group: a stream, actions with /choose and a task, named by group and sender', async () => {
  const agent = await startAgent();
  const tmp = await tempDir('relay-chat-agent-');
  const chat = new CliChat(['--wait', '1'], tmp.dir, { brokerUrl: broker.url, prefix, powBits: POW_BITS });
  try {
    chat.type(`/group create lab ${agent.userId}`);
    const groupId = (await chat.waitFor(/^now in #lab \(([0-9a-f]{64})\)$/))[1];
    // Posts before the bot joined are not seen by it (no history).
    for (let i = 0; !(await agent.groups()).some((g) => g.groupId === groupId); i++) {
      if (i > 600) throw new Error('the bot did not join');
      await sleep(50);
    }
    let mark = chat.type('/quickjob');
    const tag = `\\[#lab ${short(agent.userId)}\\]`;
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${tag} task completed: result 42$`), mark);

    mark = chat.type('/story');
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${tag} Once upon a time\\.$`), mark);

    mark = chat.type('/menu');
    const menu = (await chat.waitFor(new RegExp(`^\\((\\d+)\\) ${tag} Pick a colour$`), mark))[1];
    mark = chat.type('/choose 1');
    await chat.waitFor(new RegExp(`^chose "Red" on \\(${menu}\\) "Pick a colour"$`), mark);
    await chat.waitFor(new RegExp(`^\\(\\d+\\) ${tag} you chose red$`), mark);

    const like = await chat.send('/like');
    await chat.waitFor(new RegExp(`^${tag} reacted 👍 to \\(${like}\\) "/like"$`));

    // In a group /profile takes a member's id prefix.
    mark = chat.type(`/profile ${agent.userId.slice(0, 6)}`);
    await chat.waitFor(new RegExp(`^${agent.userId}: a bot \\(signed profile\\)$`), mark);

    const { code } = await chat.end();
    expect(code).toBe(0);
    expect(chat.lines.filter((l) => l.startsWith('!'))).toEqual([]);
  } finally {
    chat.kill();
    await tmp.remove();
  }
}, 180_000);
