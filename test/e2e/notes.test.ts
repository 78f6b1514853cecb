/** The notes bot end to end: notes in the session, reminders through the scheduler, restarts. */
import NotesBotDefault, { NotesBot } from '../../bots/notes/index.js';
import { decodeJob } from '../../framework/bot/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
const harnesses: TestHarness[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
});

afterAll(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  await broker?.close();
});

async function notesHarness(bot: NotesBot, clock?: () => number): Promise<TestHarness> {
  const h = await createTestHarness(bot, {
    brokerUrl: broker.url,
    runtimeOptions: { scheduler: { pollMs: 50 }, ...(clock ? { clock } : {}) },
  });
  harnesses.push(h);
  return h;
}

async function ask(p: TestPeer, text: string): Promise<string> {
  await p.send(text);
  return (await p.nextReply()).content;
}

test('the default export is the NotesBot class', () => {
  expect(NotesBotDefault).toBe(NotesBot);
});

test('/note add, list and clear, kept per conversation across a restart', async () => {
  const h = await notesHarness(new NotesBot());
  const alice = await h.peer();
  const bob = await h.peer();
  expect(await ask(alice, '/note add buy milk')).toBe('noted (1 note)');
  expect(await ask(alice, '/note add call "mum"')).toBe('noted (2 notes)');
  expect(await ask(bob, '/note list')).toBe('no notes');
  await h.restart();
  expect(await ask(alice, '/note list')).toBe('1. buy milk\n2. call "mum"');
  expect(await ask(alice, '/note add')).toBe('usage: /note add <text…>');
  expect(await ask(alice, '/note frobnicate')).toBe('usage: /note add <text…> | /note list | /note clear');
  expect(await ask(alice, `/note add ${'x'.repeat(64 * 1024)}`)).toBe('a note has at most 1000 characters');
  expect(await ask(alice, '/note clear')).toBe('cleared 2 notes');
  expect(await ask(alice, '/note list')).toBe('no notes');
});

test('/remind with a short minute sends the reminder into the same conversation', async () => {
  const h = await notesHarness(new NotesBot({ minuteMs: 300 }));
  const alice = await h.peer();
  expect(await ask(alice, '/remind 1 stretch')).toBe('ok, I will remind you in 1 minute');
  expect(await ask(alice, '/remind 0 never')).toBe('minutes: between 1 and 10080 (a week), got 0');
  expect((await alice.nextReply()).content).toBe('reminder: stretch');
  const jobs = await h.bot.store.listConversationData('jobs:notes:');
  // The tombstone committed with the send deletes the job.
  expect(jobs).toEqual([]);
});

test('/remind keeps at most maxReminders pending per user; a sent one frees its place', async () => {
  const h = await notesHarness(new NotesBot({ minuteMs: 400, maxReminders: 2 }));
  const alice = await h.peer();
  const bob = await h.peer();
  expect(await ask(alice, '/remind 1 soon')).toBe('ok, I will remind you in 1 minute');
  expect(await ask(alice, '/remind 1000 later')).toBe('ok, I will remind you in 1000 minutes');
  const refused = await ask(alice, '/remind 1000 too many');
  expect(refused).toBe('you have 2 pending reminders, the most I keep for one user; wait until one is sent');
  // Another user has a cap of their own.
  expect(await ask(bob, '/remind 1000 mine')).toBe('ok, I will remind you in 1000 minutes');
  expect((await alice.nextReply()).content).toBe('reminder: soon');
  expect(await ask(alice, '/remind 1000 now there is room')).toBe('ok, I will remind you in 1000 minutes');
  expect(await ask(alice, '/remind 1000 but not twice')).toMatch(/^you have 2 pending reminders/);
  const jobs = await h.bot.store.listConversationData('jobs:notes:');
  expect(jobs.map((j) => decodeJob(j.json)!.text).sort()).toEqual([
    'reminder: later',
    'reminder: mine',
    'reminder: now there is room',
  ]);
});

test('NotesBot refuses a maxReminders that is not a positive whole number', () => {
  expect(() => new NotesBot({ maxReminders: 0 })).toThrow(/maxReminders must be a positive whole number/);
  expect(() => new NotesBot({ maxReminders: 1.5 })).toThrow(/maxReminders/);
});

test('a reminder that fell due while the bot was down is sent at start, once', async () => {
  let now = 1_800_000_000_000;
  const h = await notesHarness(new NotesBot(), () => now);
  const alice = await h.peer();
  expect(await ask(alice, '/remind 2 water the plants')).toBe('ok, I will remind you in 2 minutes');
  const [job] = await h.bot.store.listConversationData('jobs:notes:');
  expect(job!.conversationId).toMatch(/^jobs:notes:001800000120000:[0-9a-f-]{36}$/);
  expect(decodeJob(job!.json)).toEqual({
    to: alice.userId,
    text: 'reminder: water the plants',
    dueAt: now + 120_000,
  });
  // Not due yet: a restart keeps it pending.
  await h.restart();
  expect(await ask(alice, '/note list')).toBe('no notes');
  await h.stop();
  now += 121_000;
  await h.start();
  expect((await alice.nextReply()).content).toBe('reminder: water the plants');
  // The removal committed with the send: after another restart nothing is sent again.
  expect(await h.bot.store.getConversationData(job!.conversationId)).toBeUndefined();
  await h.restart();
  expect(await ask(alice, '/note list')).toBe('no notes');
  expect(alice.replies.filter((r) => r.content.startsWith('reminder:'))).toHaveLength(1);
});
