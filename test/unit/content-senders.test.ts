/**
 * The §8 sender checks (content-senders.ts) as pure functions: what each content type is checked
 * against in the sender index, and what it adds to it.
 */
import { asUnixSeconds } from '../../framework/relay/brand.js';
import { idsToCheck, judgeContentSender, senderEntries } from '../../framework/relay/content-senders.js';
import type { AppContent } from '../../framework/relay/content.js';

const owners = new Map([
  ['a1', 'alice'],
  ['s1', 'alice'],
]);
const judge = (c: AppContent, sender: string) => judgeContentSender(c, sender, owners);

describe('the §8 sender checks', () => {
  it("counts an edit or delete of the sender's own message and drops one of another sender's", () => {
    const edit: AppContent = { type: 'edit', replyTo: 'a1', content: 'fixed' };
    const del: AppContent = { type: 'delete', replyTo: 'a1', content: '' };
    expect(judge(edit, 'alice')).toBeUndefined();
    expect(judge(del, 'alice')).toBeUndefined();
    expect(judge(edit, 'mallory')).toBe('content_sender');
    expect(judge(del, 'mallory')).toBe('content_sender');
  });

  it('drops an edit or delete naming an id the index does not know', () => {
    expect(judge({ type: 'edit', replyTo: 'gone', content: 'x' }, 'alice')).toBe('content_unknown_target');
    expect(judge({ type: 'delete', replyTo: 'gone', content: '' }, 'alice')).toBe('content_unknown_target');
  });

  it('continues a stream only from the member who started it; an unknown stream id opens one', () => {
    expect(judge({ type: 'stream', id: 's1', seq: 1, content: 'b' }, 'alice')).toBeUndefined();
    expect(judge({ type: 'stream', id: 's1', seq: 1, content: 'b' }, 'mallory')).toBe('content_sender');
    expect(judge({ type: 'stream', id: 'new', seq: 0, content: 'a' }, 'mallory')).toBeUndefined();
  });

  it("drops any content reusing another sender's id (a final text over someone else's stream)", () => {
    expect(judge({ type: 'text', id: 's1', content: 'final' }, 'mallory')).toBe('content_sender');
    expect(judge({ type: 'text', id: 's1', content: 'final' }, 'alice')).toBeUndefined();
    expect(judge({ type: 'reaction', replyTo: 'a1', content: '👍' }, 'bob')).toBeUndefined();
  });

  it('neither checks nor indexes typing', () => {
    const typing: AppContent = { type: 'typing', state: 'start', content: '', id: 'a1' };
    expect(idsToCheck(typing)).toEqual([]);
    expect(judge(typing, 'mallory')).toBeUndefined();
    expect(senderEntries('g', typing, 'mallory', asUnixSeconds(1))).toEqual([]);
  });

  it('indexes what has an id, under the sender, and asks for the own id and the named one', () => {
    const text: AppContent = { type: 'text', content: 'x', id: 'm1' };
    const noId: AppContent = { type: 'text', content: 'no id' };
    const edit: AppContent = { type: 'edit', id: 'e1', replyTo: 'a1', content: 'x' };
    expect(senderEntries('g', text, 'bob', asUnixSeconds(5))).toEqual([
      { groupId: 'g', messageId: 'm1', sender: 'bob', at: 5 },
    ]);
    expect(senderEntries('g', noId, 'bob', asUnixSeconds(5))).toEqual([]);
    expect(idsToCheck(edit).sort()).toEqual(['a1', 'e1']);
  });
});
