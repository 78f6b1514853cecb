/**
 * The notes bot: per-conversation notes and reminders.
 *
 *   /note add <text…>          keep a note
 *   /note list                 show them
 *   /note clear                forget them
 *   /remind <minutes> <text…>  send the text back after that many minutes
 *                              (at most maxReminders pending per user, default 25)
 *
 * Notes live in ctx.session, which commits with the message. A reminder is a scheduled job
 * (ctx.schedule, key `jobs:notes:<due>:<id>`) written in the /remind transaction and sent by the
 * runtime's scheduler, which removes it in the same commit as the send; so a reminder survives
 * restarts, and one that fell due while the bot was down is sent when it starts again. Run it with
 * attach(client, { store }) so the scheduler runs.
 *
 * The cap: each user's pending job keys are kept under `remind:notes:<user id>`; a key whose job is
 * gone (the scheduler's send removed it) no longer counts. Jobs are stored data, so without a cap
 * one user could grow the store and the scheduler's every pass without bound.
 */
import { Bot, ConfigError, OnCommand, TOMBSTONE, type BotContext } from '../../index.js';

export interface NotesBotOptions {
  /** Length of a "minute" in ms (default 60 000); tests make it short. */
  minuteMs?: number;
  /** Notes kept per conversation (default 100). */
  maxNotes?: number;
  /** Reminders one user may have pending at a time (default 25). */
  maxReminders?: number;
}

export interface NotesSession {
  notes?: string[];
}

/** A week. */
export const MAX_REMIND_MINUTES = 7 * 24 * 60;
export const MAX_NOTE_LENGTH = 1000;

const remindersKey = (userId: string): string => `remind:notes:${userId}`;

const positiveWhole = (name: string, value: number): number => {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new ConfigError(`NotesBot ${name} must be a positive whole number, got ${value}`);
  return value;
};

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

@Bot({ name: 'notes', description: 'keeps notes and reminds you of things' })
export class NotesBot {
  private readonly minuteMs: number;
  private readonly maxNotes: number;
  private readonly maxReminders: number;

  constructor(options: NotesBotOptions = {}) {
    this.minuteMs = positiveWhole('minuteMs', options.minuteMs ?? 60_000);
    this.maxNotes = positiveWhole('maxNotes', options.maxNotes ?? 100);
    this.maxReminders = positiveWhole('maxReminders', options.maxReminders ?? 25);
  }

  @OnCommand('note', { args: '<action> [text...]', description: 'add <text…>, list or clear your notes' })
  async note(ctx: BotContext<{ action: string; text: string | undefined }, NotesSession>): Promise<string> {
    const session = await ctx.session.get();
    const notes = session.notes ?? [];
    switch (ctx.args.action.toLowerCase()) {
      case 'add': {
        const text = ctx.args.text;
        if (text === undefined) return 'usage: /note add <text…>';
        if (text.length > MAX_NOTE_LENGTH) return `a note has at most ${MAX_NOTE_LENGTH} characters`;
        if (notes.length >= this.maxNotes)
          return `you have ${this.maxNotes} notes already; /note clear first`;
        session.notes = [...notes, text];
        return `noted (${plural(session.notes.length, 'note')})`;
      }
      case 'list':
        return notes.length === 0 ? 'no notes' : notes.map((n, i) => `${i + 1}. ${n}`).join('\n');
      case 'clear':
        session.notes = [];
        return `cleared ${plural(notes.length, 'note')}`;
      default:
        return 'usage: /note add <text…> | /note list | /note clear';
    }
  }

  @OnCommand('remind', {
    args: '<minutes:int> <text...>',
    description: 'sends you the text after that many minutes',
  })
  async remind(ctx: BotContext<{ minutes: number; text: string }>): Promise<string> {
    const { minutes, text } = ctx.args;
    if (minutes < 1 || minutes > MAX_REMIND_MINUTES)
      return `minutes: between 1 and ${MAX_REMIND_MINUTES} (a week), got ${minutes}`;
    if (text.length > MAX_NOTE_LENGTH) return `a reminder has at most ${MAX_NOTE_LENGTH} characters`;
    const pending = await this.pendingReminders(ctx);
    if (pending.length >= this.maxReminders)
      return `you have ${plural(pending.length, 'pending reminder')}, the most I keep for one user; wait until one is sent`;
    const key = ctx.schedule({ inMs: minutes * this.minuteMs, text: `reminder: ${text}` });
    ctx.tx.saveData(remindersKey(ctx.sender), JSON.stringify([...pending, key]));
    return `ok, I will remind you in ${plural(minutes, 'minute')}`;
  }

  /** The sender's job keys whose jobs are still stored, i.e. not sent yet. */
  private async pendingReminders(ctx: BotContext): Promise<string[]> {
    const stored = await ctx.tx.loadData(remindersKey(ctx.sender));
    const parsed: unknown = stored === undefined || stored === TOMBSTONE ? [] : JSON.parse(stored);
    const keys = Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === 'string') : [];
    const alive = await Promise.all(
      keys.map(async (k) => {
        const job = await ctx.tx.loadData(k);
        return job !== undefined && job !== TOMBSTONE;
      }),
    );
    return keys.filter((_, i) => alive[i]);
  }
}

export default NotesBot;
