#!/usr/bin/env node
/**
 * relay-bot: run, talk to and look after Relay bots. Built to dist/cli/main.js (the package's bin);
 * in development: `npx tsx cli/main.ts <command>`.
 *
 * Exit codes: 0 success, 1 the command ran and failed, 2 bad usage or configuration (the message
 * names the fix).
 */
import 'reflect-metadata';
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as chat from './commands/chat.js';
import * as doctor from './commands/doctor.js';
import * as id from './commands/id.js';
import * as init from './commands/init.js';
import * as keys from './commands/keys.js';
import * as migrate from './commands/migrate.js';
import * as send from './commands/send.js';
import * as start from './commands/start.js';
import { CommandFailed, UsageError } from './errors.js';
import { RelayError } from '../index.js';

const commands = [start, id, send, chat, init, keys, migrate, doctor] as unknown as CommandModule[];

function exitCodeOf(e: unknown): number {
  if (e instanceof UsageError || e instanceof CommandFailed) return e.exitCode;
  // The framework's configuration and argument errors are the user's to fix too.
  if (e instanceof RelayError && (e.code === 'CONFIG' || e.code === 'ARGUMENT')) return 2;
  return 1;
}

async function flushAndExit(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
  const cli = yargs(argv)
    .scriptName('relay-bot')
    .usage('$0 <command> [options]')
    .command(commands)
    .demandCommand(1, 'Give a command: start, id, send, chat, init, keys, migrate or doctor (see --help)')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(`${msg}. Fix: see relay-bot --help`);
    });
  try {
    await cli.parseAsync();
  } catch (e) {
    const code = exitCodeOf(e);
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`relay-bot: ${message}\n`);
    if (code === 1 && process.env.RELAY_DEBUG && e instanceof Error && e.stack) {
      process.stderr.write(`${e.stack}\n`);
    }
    await flushAndExit(code);
  }
  // Commands that finish (everything but start's signal path, which resolves once stopped) exit
  // here, so no library timer or worker keeps the process alive.
  await flushAndExit(typeof process.exitCode === 'number' ? process.exitCode : 0);
}

await main(hideBin(process.argv));
