/**
 * What a 1:1 session keeps of a message sent while unconfirmed (SessionRecord.unconfirmedOutgoing),
 * to re-send it whole, type and id included, if the session loses a simultaneous-initiation race.
 */
import { decodeContent, type AppContent } from './content.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The entry for content as encodeContent() gave it: its UTF-8 JSON text. */
export function unconfirmedEntry(encoded: Uint8Array): string {
  return decoder.decode(encoded);
}

/**
 * An entry back to the content to re-send. Rows stored before types were kept hold the plain text;
 * such a text reads as text, unless it happens to be a §8 JSON object itself (then it is sent as
 * that content, which only its own author could have typed).
 */
export function unconfirmedContent(entry: string): AppContent {
  if (entry.startsWith('{')) {
    try {
      return decodeContent(encoder.encode(entry));
    } catch {
      // A plain text that only looks like JSON.
    }
  }
  return { type: 'text', content: entry };
}
