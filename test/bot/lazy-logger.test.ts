/** lazyChild: the per-message logger is made only when something logs through it. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { lazyChild } from '../../framework/bot/lazy-logger.js';

function sink(level: string): {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  children: () => number;
} {
  const lines: Array<Record<string, unknown>> = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level }, out);
  let made = 0;
  const child = logger.child.bind(logger);
  logger.child = ((...a: Parameters<Logger['child']>) => {
    made++;
    return child(...a);
  }) as Logger['child'];
  return { logger, lines, children: () => made };
}

describe('lazyChild', () => {
  test('makes no child until used, and none for a disabled level', () => {
    const { logger, children } = sink('info');
    const log = lazyChild(logger, { conversation: 'c1' });
    log.debug('not written');
    log.trace({ a: 1 }, 'not written');
    expect(children()).toBe(0);
  });

  test('writes with the bindings once used, through one child', async () => {
    const { logger, lines, children } = sink('info');
    const log = lazyChild(logger, { conversation: 'c1', sender: 's1' });
    log.info({ extra: 1 }, 'hello');
    log.warn('again');
    await new Promise((r) => setImmediate(r));
    expect(children()).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ conversation: 'c1', sender: 's1', extra: 1, msg: 'hello' }),
      expect.objectContaining({ conversation: 'c1', sender: 's1', msg: 'again' }),
    ]);
    expect(log.bindings()).toEqual({ conversation: 'c1', sender: 's1' });
    expect(log.level).toBe('info');
  });
});
