/**
 * Task options are checked where they are written: a bad `task` option on @OnCommand and bad
 * `tasks` limits on BotRuntime are ConfigErrors naming the fix, and a task command's metadata and
 * plan carry its restart policy (default 'fail').
 */
import { Bot, BotRuntime, OnCommand, readBotMetadata, type TaskContext } from '../../framework/bot/index.js';
import { ConfigError } from '../../framework/relay/index.js';

@Bot({ name: 'tasky' })
class Tasky {
  @OnCommand('plain', { task: true })
  plain(_ctx: TaskContext): string {
    return 'ok';
  }

  @OnCommand('again', { task: { onRestart: 'resume' }, args: '<n:int>' })
  again(ctx: TaskContext<{ n: number }>): string {
    return String(ctx.args.n);
  }

  @OnCommand('quick', { task: false })
  quick(): string {
    return 'quick';
  }
}

test('task commands carry their restart policy; task: false is an ordinary command', () => {
  const meta = readBotMetadata(Tasky);
  const byName = new Map(meta.commands.map((c) => [c.name, c.task]));
  expect(byName.get('plain')).toEqual({ onRestart: 'fail' });
  expect(byName.get('again')).toEqual({ onRestart: 'resume' });
  expect(byName.get('quick')).toBeUndefined();
  const runtime = new BotRuntime(new Tasky());
  expect(runtime.plan.commands.find((c) => c.name === 'again')?.task).toEqual({ onRestart: 'resume' });
  expect(runtime.taskCounters).toEqual({ cancel_not_requester: 0, cancel_unknown_task: 0 });
});

test('a bad onRestart is a ConfigError naming the choices', () => {
  expect(() => OnCommand('bad', { task: { onRestart: 'later' as 'resume' } })).toThrow(ConfigError);
  expect(() => OnCommand('bad', { task: { onRestart: 'later' as 'resume' } })).toThrow(
    "task.onRestart must be 'resume' or 'fail'",
  );
});

test.each([
  ['perUser', 0],
  ['total', -1],
  ['progressEveryMs', 1.5],
])('tasks.%s = %p is a ConfigError', (key, value) => {
  expect(() => new BotRuntime(new Tasky(), { tasks: { [key]: value } })).toThrow(
    `tasks.${key} must be a positive whole number`,
  );
});
