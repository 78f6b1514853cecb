/**
 * The CLI's logger: pino on stderr, so stdout carries only what a command prints for people and
 * scripts. In a terminal the lines are printed readably (pino-pretty, in-process and synchronous, so
 * nothing is lost when the process exits); piped or redirected they stay JSON lines, for log
 * collectors. logging.format (RELAY_LOG_FORMAT) overrides the choice.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** What `auto` becomes: readable on a terminal, JSON elsewhere. */
export function resolveLogFormat(format: LogFormat, stderrIsTty: boolean): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return stderrIsTty ? 'pretty' : 'json';
}

/** Colours only on a terminal, and never when NO_COLOR is set (no-color.org). */
export function useColour(stderrIsTty: boolean, env: NodeJS.ProcessEnv): boolean {
  return stderrIsTty && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

function prettyStream(colorize: boolean): DestinationStream {
  return PinoPretty({
    destination: 2,
    sync: true,
    colorize,
    // pid and hostname say nothing to someone watching one process in a terminal.
    ignore: 'pid,hostname',
    translateTime: 'SYS:HH:MM:ss.l',
  });
}

export function createLogger(level: string, format: LogFormat): Logger {
  const tty = process.stderr.isTTY === true;
  const destination =
    resolveLogFormat(format, tty) === 'pretty'
      ? prettyStream(useColour(tty, process.env))
      : pino.destination({ fd: 2, sync: true });
  return pino({ level }, destination);
}
