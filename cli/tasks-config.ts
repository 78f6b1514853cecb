/**
 * The `tasks` config section: limits and pacing of a bot's task commands (`@OnCommand(name,
 * { task: true })`), passed to the BotRuntime as its `tasks` option (framework/bot TaskLimits).
 */
import { z } from 'zod';
import { DEFAULT_TASK_LIMITS, type TaskLimits } from '../index.js';

/** An hour: pacing and sweeps longer than that would look like a stuck bot. */
export const MAX_TASK_INTERVAL_MS = 3_600_000;
/** Far more unfinished tasks than one bot's model or store serves at once. */
export const MAX_TASKS = 100_000;

const count = z.number().int().min(1).max(MAX_TASKS);
const interval = z.number().int().min(1).max(MAX_TASK_INTERVAL_MS);

/** The `tasks` key of the config; every key left out keeps the framework's default. */
export const tasksSchema = z
  .strictObject({
    perUser: count.optional(),
    total: count.optional(),
    progressEveryMs: interval.optional(),
    sweepMs: interval.optional(),
    cancelGraceMs: interval.optional(),
  })
  .superRefine((t, ctx) => {
    // A requester could never reach perUser: the smaller total refuses first.
    const total = t.total ?? DEFAULT_TASK_LIMITS.total;
    if (t.perUser !== undefined && t.perUser > total) {
      ctx.addIssue({
        code: 'custom',
        path: ['perUser'],
        message: `it is more than tasks.total (${total})`,
      });
    }
  })
  .default({});

/** The parsed `tasks` section. */
export type TasksConfig = z.output<typeof tasksSchema>;

const ms = (key: keyof TaskLimits): string =>
  `use a whole number of milliseconds from 1 to ${MAX_TASK_INTERVAL_MS} (default ${DEFAULT_TASK_LIMITS[key]})`;

/** How to fix each tasks key, for error messages (merged into config-schema.ts FIX). */
export const TASKS_FIX: Record<string, string> = {
  'tasks.perUser': `use a whole number from 1 to tasks.total (default ${DEFAULT_TASK_LIMITS.perUser}): the unfinished tasks one person may have`,
  'tasks.total': `use a whole number from 1 to ${MAX_TASKS} (default ${DEFAULT_TASK_LIMITS.total}): the unfinished tasks of the bot in all`,
  'tasks.progressEveryMs': ms('progressEveryMs'),
  'tasks.sweepMs': ms('sweepMs'),
  'tasks.cancelGraceMs': ms('cancelGraceMs'),
  tasks: 'use a mapping with perUser, total, progressEveryMs, sweepMs and cancelGraceMs',
};

/** Environment overrides of the tasks section (merged into config-schema.ts ENV_OVERRIDES). */
export const TASKS_ENV = [
  { env: 'RELAY_TASKS_PER_USER', key: 'tasks.perUser', kind: 'int' },
  { env: 'RELAY_TASKS_TOTAL', key: 'tasks.total', kind: 'int' },
] as const;

/** BotRuntime's `tasks` option: only the keys the file sets, so the rest keep their defaults. */
export function taskLimitsOf(tasks: TasksConfig): TaskLimits {
  return Object.fromEntries(Object.entries(tasks).filter(([, v]) => v !== undefined)) as TaskLimits;
}
