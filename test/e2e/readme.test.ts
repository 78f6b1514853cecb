/** The bot and the harness use shown in README.md, kept honest by running them. */
import { Bot, OnCommand, type BotContext } from '../../framework/bot/index.js';
import { createTestHarness } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

@Bot({ name: 'weather', description: 'Forecasts, end-to-end encrypted' })
class WeatherBot {
  @OnCommand('weather', { args: '<city> [days:int=1]', description: 'forecast for a city' })
  weather(ctx: BotContext<{ city: string; days: number }>) {
    ctx.reply(`${ctx.args.city}: sunny for ${ctx.args.days} day(s)`);
  }
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

test('the README weather bot answers through the harness', async () => {
  const h = await createTestHarness(WeatherBot, { brokerUrl: broker.url });
  try {
    const alice = await h.peer();
    await alice.send('/weather Oslo 2');
    expect((await alice.nextReply()).content).toBe('Oslo: sunny for 2 day(s)');
    await alice.send('/weather Bergen');
    expect((await alice.nextReply()).content).toBe('Bergen: sunny for 1 day(s)');
  } finally {
    await h.close();
  }
});
