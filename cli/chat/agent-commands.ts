/**
 * The chat's commands about messages and bots (PROTOCOL.md §8): /react, /unreact, /edit, /delete,
 * /choose, /cancel and /profile. Messages are named by the numbers the chat prints, `(n)`; what
 * they send goes to the conversation the message is in, whatever the current one is.
 */
import type { ContentInput, RelayClient } from '../../framework/relay/index.js';
import { profileLines, quote } from './content-lines.js';
import { printable, type Conversation } from './format.js';
import type { ProfileBook } from './profiles.js';
import type { MessageRef, MessageRefs } from './refs.js';
import { ChatError, resolveUser } from './resolve.js';

/** What the commands use of the client. */
export type AgentClient = Pick<RelayClient, 'userId' | 'send' | 'sendToGroup' | 'verifyPeer' | 'group'>;

/** A chat command: the words after it, and the rest of the line as typed (for texts). */
export type Command = (args: string[], rest: string) => Promise<void> | void;

const FINAL_TASK_STATES = new Set(['completed', 'failed', 'canceled']);

export interface AgentCommandDeps {
  client: AgentClient;
  refs: MessageRefs;
  profiles: ProfileBook;
  print: (line: string) => void;
  current: () => Conversation | undefined;
  /** Users the chat knows (peers, members, senders), for prefixes in /profile. */
  known: () => string[];
}

/** Sends content to a conversation; returns the message id. */
export async function sendTo(
  client: AgentClient,
  to: Conversation,
  content: string | ContentInput,
): Promise<string> {
  const sent =
    to.kind === 'group' ? await client.sendToGroup(to.id, content) : await client.send(to.id, content);
  return sent.id;
}

function refNumber(word: string | undefined, usage: string): number {
  if (word === undefined || !/^\(?\d{1,9}\)?$/.test(word)) throw new ChatError(usage);
  return Number(word.replace(/[()]/g, ''));
}

export class AgentCommands {
  constructor(private readonly d: AgentCommandDeps) {}

  commands(): Record<string, Command> {
    return {
      '/react': (a) => this.react(a, false),
      '/unreact': (a) => this.react(a, true),
      '/edit': (a, rest) => this.edit(a, rest),
      '/delete': (a) => this.delete(a),
      '/choose': (a) => this.choose(a),
      '/cancel': (a) => this.cancel(a),
      '/profile': (a) => this.profile(a),
    };
  }

  /** The message numbered n; a ChatError when the chat has no such number (or it carried no id). */
  private message(n: number): MessageRef & { id: string } {
    const ref = this.d.refs.get(n);
    if (!ref) throw new ChatError(`no message (${n}) here; the numbers are the (n) before each message`);
    if (ref.id === undefined) throw new ChatError(`message (${n}) carried no id, so nothing can refer to it`);
    return ref as MessageRef & { id: string };
  }

  private mine(n: number, what: string): MessageRef & { id: string } {
    const ref = this.message(n);
    if (ref.from !== this.d.client.userId) {
      throw new ChatError(`(${n}) is not your message; you can only ${what} your own (the "(n) sent" ones)`);
    }
    return ref;
  }

  private async react([n, emoji]: string[], remove: boolean): Promise<void> {
    const usage = `usage: /${remove ? 'unreact' : 'react'} <n> <emoji or word>`;
    const ref = this.message(refNumber(n, usage));
    if (emoji === undefined) throw new ChatError(usage);
    await sendTo(this.d.client, ref.conversation, {
      type: 'reaction',
      replyTo: ref.id,
      content: emoji,
      ...(remove ? { remove: true } : {}),
    });
    this.d.print(
      `${remove ? 'took back' : 'reacted'} ${printable(emoji)} ${remove ? 'on' : 'to'} ${quote(ref)}`,
    );
  }

  private async edit([n]: string[], rest: string): Promise<void> {
    const usage = 'usage: /edit <n> <new text>';
    const ref = this.mine(refNumber(n, usage), 'edit');
    const text = rest.slice(rest.indexOf(n!) + n!.length).trim();
    if (text.length === 0) throw new ChatError(usage);
    await sendTo(this.d.client, ref.conversation, { type: 'edit', replyTo: ref.id, content: text });
    ref.text = text;
    this.d.print(`(${ref.n}) edited`);
  }

  private async delete([n]: string[]): Promise<void> {
    const ref = this.mine(refNumber(n, 'usage: /delete <n>'), 'delete');
    await sendTo(this.d.client, ref.conversation, { type: 'delete', replyTo: ref.id, content: '' });
    ref.deleted = true;
    this.d.print(`(${ref.n}) deleted`);
  }

  /** `/choose <k>`: of the newest buttons here; `/choose <n> <k>`: of message (n). */
  private async choose(args: string[]): Promise<void> {
    const usage = 'usage: /choose <number>  or  /choose <message n> <number>';
    if (args.length === 0 || args.length > 2) throw new ChatError(usage);
    let ref: MessageRef | undefined;
    if (args.length === 2) {
      ref = this.message(refNumber(args[0], usage));
      if (!ref.actions) throw new ChatError(`(${ref.n}) offers no choices`);
    } else {
      const here = this.d.current();
      ref = here && this.d.refs.latest(here, (r) => r.actions !== undefined);
      if (!ref) throw new ChatError('nothing to choose from in this conversation yet');
    }
    const k = refNumber(args[args.length - 1], usage);
    const action = ref.actions![k - 1];
    if (!action) throw new ChatError(`(${ref.n}) offers choices 1 to ${ref.actions!.length}`);
    if (ref.id === undefined) throw new ChatError(`(${ref.n}) carried no id, so no choice can answer it`);
    await sendTo(this.d.client, ref.conversation, { type: 'action', replyTo: ref.id, content: action.id });
    this.d.print(`chose "${printable(action.label)}" on ${quote(ref)}`);
  }

  private async cancel([n]: string[]): Promise<void> {
    const ref = this.message(refNumber(n, 'usage: /cancel <n> (the number of a task)'));
    if (ref.task === undefined) throw new ChatError(`(${ref.n}) is not a task`);
    if (FINAL_TASK_STATES.has(ref.task)) throw new ChatError(`task (${ref.n}) is ${ref.task} already`);
    await sendTo(this.d.client, ref.conversation, { type: 'task-cancel', replyTo: ref.id, content: '' });
    this.d.print(`asked to cancel task (${ref.n})`);
  }

  /** `/profile [user]`: the signed profile in the user's bundle (the current peer by default). */
  private async profile([who]: string[]): Promise<void> {
    const here = this.d.current();
    let id: string;
    if (who !== undefined) {
      // A group's members, read now: the session loads them only on a terminal (for completions).
      const info = here?.kind === 'group' ? await this.d.client.group(here.id) : undefined;
      id = resolveUser(who, [...this.d.known(), ...(info?.members.map((m) => m.userId) ?? [])]);
    } else if (here?.kind === 'direct') id = here.id;
    else throw new ChatError('usage: /profile <user_id or prefix>  (in a direct conversation: /profile)');
    const seen = await this.d.profiles.load(id);
    for (const line of profileLines(id, seen)) this.d.print(line);
  }
}
