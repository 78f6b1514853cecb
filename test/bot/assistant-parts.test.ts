/**
 * The assistant's small parts that need no model server: the sentence for each model failure, and
 * the typing indicator it keeps up while it waits (assistant.test.ts has the bot's behaviour).
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { modelErrorReply, ModelError, TypingIndicator } from '../../bots/assistant/index.js';

test('modelErrorReply has a sentence for every reason', () => {
  const reasons = [
    'unauthorized',
    'rate-limited',
    'server',
    'rejected',
    'timeout',
    'malformed',
    'unreachable',
  ] as const;
  const replies = reasons.map((r) => modelErrorReply(new ModelError(r, 'x')));
  expect(new Set(replies).size).toBe(reasons.length);
});

describe('TypingIndicator', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  test('sends at once, repeats until stop(), and then never again', async () => {
    let calls = 0;
    const typing = new TypingIndicator(
      async () => {
        calls++;
      },
      pino({ level: 'silent' }),
      20,
    );
    typing.start();
    expect(calls).toBe(1);
    while (calls < 3) await sleep(5);
    typing.stop();
    const stopped = calls;
    await sleep(100);
    expect(calls).toBe(stopped);
  });

  test('a failed typing indicator is logged at debug, not thrown', async () => {
    const logs: string[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done): void => {
        logs.push(chunk.toString());
        done();
      },
    });
    const typing = new TypingIndicator(
      () => Promise.reject(new Error('no typing here')),
      pino({ level: 'debug' }, sink),
    );
    typing.start();
    typing.stop();
    while (logs.length === 0) await sleep(5);
    expect(JSON.parse(logs[0]!)).toMatchObject({ level: 20, msg: 'typing indicator not sent' });
  });

  test('without ctx.typing it does nothing', () => {
    const typing = new TypingIndicator(undefined, pino({ level: 'silent' }));
    typing.start();
    typing.stop();
  });
});
