/** The echo bot end to end, through the harness, a real broker and an SQLite store. */
import EchoBotDefault, { EchoBot } from '../../bots/echo/index.js';
import { createTestHarness, type TestHarness } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
let h: TestHarness;

beforeAll(async () => {
  broker = await getTestBroker();
  h = await createTestHarness(EchoBot, { brokerUrl: broker.url });
});

afterAll(async () => {
  await h?.close();
  await broker?.close();
});

test('the default export is the EchoBot class', () => {
  expect(EchoBotDefault).toBe(EchoBot);
});

test('/ping answers pong, /echo repeats, /help lists both', async () => {
  const alice = await h.peer();
  const sent = await alice.send('/ping');
  const pong = await alice.nextReply();
  expect(pong.content).toBe('pong');
  expect(pong.replyTo).toBe(sent.id);
  await alice.send('/echo hello   "world"');
  expect((await alice.nextReply()).content).toBe('hello   "world"');
  await alice.send('/help');
  const help = (await alice.nextReply()).content.split('\n');
  expect(help[0]).toBe('echo — answers /ping and repeats what you /echo');
  expect(help).toEqual(expect.arrayContaining(['/ping — answers pong', '/echo <text…> — repeats the text']));
  await alice.send('/help echo');
  expect((await alice.nextReply()).content).toBe('usage: /echo <text…>\nrepeats the text');
  await alice.send('/echo');
  expect((await alice.nextReply()).content).toBe('usage: /echo <text…>\nmissing <text…>');
});

test('with no options the harness owns an embedded broker and a temp SQLite file', async () => {
  const own = await createTestHarness(new EchoBot());
  try {
    expect(own.brokerUrl).not.toBe(broker.url);
    const bob = await own.peer();
    await bob.send('/echo on my own broker');
    expect((await bob.nextReply()).content).toBe('on my own broker');
    await own.restart();
    await bob.send('/ping');
    expect((await bob.nextReply()).content).toBe('pong');
    expect(bob.replies.map((r) => r.content)).toEqual(['on my own broker', 'pong']);
  } finally {
    await own.close();
    await own.close();
  }
});
