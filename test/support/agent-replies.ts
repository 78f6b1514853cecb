/**
 * What a receiver saw of an agent's replies (PROTOCOL.md §8), read back for crash tests: per
 * command the stream(s) answering it and the final texts, and per stream the faults a receiver
 * would show: parts out of order or repeated, a part after the final, more than one final, no final.
 */
import type { ReceivedMessage, StreamContent } from '../../framework/relay/index.js';

export interface StreamSeen {
  id: string;
  /** The request the parts answer. */
  replyTo: string | undefined;
  seqs: number[];
  /** The parts' text, in arrival order. */
  text: string;
  /** The final texts with the stream's id, in arrival order. */
  finals: string[];
  /** Parts that arrived after the (first) final. */
  partsAfterFinal: number;
}

/** The bot's messages to one receiver, grouped by stream. */
export function streamsSeen(fromBot: readonly ReceivedMessage[]): Map<string, StreamSeen> {
  const streams = new Map<string, StreamSeen>();
  for (const m of fromBot) {
    const c = m.content;
    if (c.type !== 'stream' || c.id === undefined) continue;
    const s = streams.get(c.id) ?? {
      id: c.id,
      replyTo: c.replyTo,
      seqs: [],
      text: '',
      finals: [],
      partsAfterFinal: 0,
    };
    streams.set(c.id, s);
    if (s.finals.length > 0) s.partsAfterFinal++;
    s.seqs.push((c as StreamContent).seq);
    s.text += c.content;
  }
  for (const m of fromBot) {
    const c = m.content;
    if (c.type === 'text' && c.id !== undefined) streams.get(c.id)?.finals.push(c.content);
  }
  return streams;
}

/** A stream's faults, one line each; none for a well-formed stream. */
export function streamFaults(s: StreamSeen): string[] {
  const faults: string[] = [];
  if (s.seqs.some((seq, i) => seq !== i)) faults.push(`parts in order ${s.seqs.join(',')}`);
  if (s.finals.length === 0) faults.push('no final text (left open)');
  if (s.finals.length > 1) faults.push(`${s.finals.length} final texts: ${JSON.stringify(s.finals)}`);
  if (s.partsAfterFinal > 0) faults.push(`${s.partsAfterFinal} parts after the final`);
  return faults.map((f) => `stream ${s.id} (answering ${s.replyTo}): ${f}`);
}

/** The bot's answers to one command: texts replying to it (stream finals included), in arrival order. */
export function answersTo(fromBot: readonly ReceivedMessage[], commandId: string): string[] {
  const streamIds = new Set(
    fromBot.flatMap((m) =>
      m.content.type === 'stream' && m.content.replyTo === commandId && m.content.id ? [m.content.id] : [],
    ),
  );
  return fromBot
    .filter(
      (m) =>
        m.content.type === 'text' &&
        (m.content.replyTo === commandId || (m.content.id !== undefined && streamIds.has(m.content.id))),
    )
    .map((m) => m.content.content);
}
