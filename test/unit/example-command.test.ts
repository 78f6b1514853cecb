import type { CommandInfo } from '../../framework/bot/index.js';
import { exampleCommand } from '../../cli/example-command.js';

function cmd(name: string, usage: string, extra: Partial<CommandInfo> = {}): CommandInfo {
  return { name, usage, aliases: [], guarded: false, ...extra };
}

describe('the command relay-bot start suggests', () => {
  test('/ping when the bot has it, by name or alias', () => {
    expect(exampleCommand([cmd('weather', 'usage: /weather <city>'), cmd('ping', 'usage: /ping')])).toBe(
      '/ping',
    );
    expect(exampleCommand([cmd('pong', 'usage: /pong', { aliases: ['ping'] })])).toBe('/ping');
  });

  test('else the first unguarded command that needs no argument', () => {
    const commands = [
      cmd('weather', 'usage: /weather <city>'),
      cmd('ban', 'usage: /ban', { guarded: true }),
      cmd('forecast', 'usage: /forecast [days]'),
      cmd('help', 'usage: /help [command]'),
    ];
    expect(exampleCommand(commands)).toBe('/forecast');
  });

  test('else /help', () => {
    expect(exampleCommand([cmd('weather', 'usage: /weather <city>')])).toBe('/help');
    expect(exampleCommand([])).toBe('/help');
  });
});
