/**
 * The chat's commands and wording against a fake client (no broker): what each command calls, what
 * it prints, and how mistakes are reported. test/cli/chat-groups.test.ts runs them for real.
 */
import { EventEmitter } from 'eventemitter3';
import { PassThrough, Writable } from 'node:stream';
import { runChat } from '../../cli/chat/run.js';
import { findGroup, resolveUser } from '../../cli/chat/resolve.js';
import { senderTag, textLine } from '../../cli/chat/content-lines.js';
import { groupEventLine, groupLabel, printableLines } from '../../cli/chat/format.js';
import { ChatSession, type ChatClient } from '../../cli/chat/session.js';
import { UsageError } from '../../cli/errors.js';
import type { GroupInfo, RelayClientEvents, UserIdHex } from '../../framework/relay/index.js';

const ME = 'a'.repeat(32) as UserIdHex;
const BOB = 'b'.repeat(32) as UserIdHex;
const CAROL = 'c'.repeat(32) as UserIdHex;
const GID = '1'.repeat(64);

function info(members: UserIdHex[], extra: Partial<GroupInfo> = {}): GroupInfo {
  return {
    groupId: GID,
    topicId: '2'.repeat(32),
    name: 'team',
    epoch: 1n,
    members: members.map((userId, leafIndex) => ({ userId, leafIndex })),
    committer: members[0]!,
    isCommitter: members[0] === ME,
    ...extra,
  };
}

/** Records what the chat asks of the client; groups() answers with `groupList`. */
class FakeClient extends EventEmitter<RelayClientEvents> {
  readonly userId = ME;
  readonly calls: string[] = [];
  groupList: GroupInfo[] = [];

  async send(to: string, m: unknown) {
    this.calls.push(`send ${to} ${String(m)}`);
    return { id: 'x' };
  }
  async sendToGroup(g: string, m: unknown) {
    this.calls.push(`sendToGroup ${g} ${String(m)}`);
    return { id: 'x' };
  }
  async createGroup(members: readonly string[], opts?: { name?: string }) {
    this.calls.push(`createGroup ${members.join(',')} ${opts?.name}`);
    this.groupList = [info([ME, ...(members as UserIdHex[])], { name: opts?.name })];
    return this.groupList[0]!;
  }
  async addToGroup(g: string, ids: readonly string[]) {
    this.calls.push(`addToGroup ${g} ${ids.join(',')}`);
  }
  async removeFromGroup(g: string, ids: readonly string[]) {
    this.calls.push(`removeFromGroup ${g} ${ids.join(',')}`);
  }
  async leaveGroup(g: string) {
    this.calls.push(`leaveGroup ${g}`);
  }
  async group(g: string) {
    return this.groupList.find((x) => x.groupId === g);
  }
  async groups() {
    return this.groupList;
  }
}

function setUp(peers: string[] = [BOB]) {
  const client = new FakeClient();
  const out: string[] = [];
  const session = new ChatSession(client as unknown as ChatClient, peers, (l) => out.push(l));
  const detach = session.attach();
  const run = async (...lines: string[]) => {
    for (const l of lines) session.line(l);
    await session.idle();
  };
  return { client, out, session, run, detach };
}

test('plain lines and unknown /commands go to the current peer; //text sends /text', async () => {
  const { client, run } = setUp();
  await run('hello', '/ping', '//members', '//leave now', '  ');
  expect(client.calls).toEqual([
    `send ${BOB} hello`,
    `send ${BOB} /ping`,
    `send ${BOB} /members`,
    `send ${BOB} /leave now`,
  ]);
});

test('/quit ends the session; /peers, /switch and /add keep their 1:1 behaviour', async () => {
  const { session, out, run } = setUp([BOB, CAROL]);
  expect(session.line('/quit')).toBe(false);
  await run('/switch 2', '/peers', '/switch zz', `/add ${'d'.repeat(32)}`, '/add nope');
  expect(out).toEqual([
    `now talking to ${CAROL}`,
    `  1. ${BOB}`,
    `* 2. ${CAROL}`,
    'no such peer: zz; see /peers',
    `now talking to ${'d'.repeat(32)}`,
    expect.stringContaining('"nope" is not a user id. Fix: give the 32 hex characters'),
  ]);
});

test('/group create makes the group current; lines then go to it', async () => {
  const { client, out, session, run } = setUp();
  await run(`/group create team ${BOB.slice(0, 6)}`, 'hi all');
  expect(client.calls).toEqual([`createGroup ${BOB} team`, `sendToGroup ${GID} hi all`]);
  expect(out).toEqual([
    `created #team with 2 members, invited bbbbbbbb`,
    `now in #team (${GID})`,
    '(1) sent',
  ]);
  expect(session.current).toEqual({ kind: 'group', id: GID });
});

test('group commands outside a group, and bad arguments, say how to fix them', async () => {
  const { client, out, run } = setUp();
  await run('/invite ' + CAROL, '/members', '/leave', '/group', '/group create ' + CAROL, '/group use nope');
  expect(client.calls).toEqual([]);
  expect(out).toEqual([
    expect.stringMatching(/^\/invite is for groups\. Fix: \/group use <group> first/),
    expect.stringMatching(/^\/members is for groups/),
    expect.stringMatching(/^\/leave is for groups/),
    'usage: /group create <name> <user_id>...  or  /group use <group_id|name|number>',
    `"${CAROL}" is a user id, not a group name. Fix: /group create <name> <user_id>...`,
    'no group "nope" (you are in no group). Fix: give a group id, name or number from /groups',
  ]);
});

test('/members, /invite, /remove and /leave in a group', async () => {
  const { client, out, run } = setUp();
  client.groupList = [info([ME, BOB])];
  await run('/group use team', '/members', `/invite ${CAROL}`, `/invite ${BOB}`);
  client.groupList = [info([ME, BOB, CAROL])];
  await run('/remove cccc', '/remove ' + ME, `/remove ${'d'.repeat(32)}`, '/groups', '/leave');
  expect(client.calls).toEqual([
    `addToGroup ${GID} ${CAROL}`,
    `removeFromGroup ${GID} ${CAROL}`,
    `leaveGroup ${GID}`,
  ]);
  expect(out).toEqual([
    `now in #team (${GID})`,
    '#team: 2 members, epoch 1',
    `  ${ME} (you, committer)`,
    `  ${BOB}`,
    'invited cccccccc to #team',
    `${BOB} is in #team already; see /members`,
    'removed cccccccc from #team',
    'that is you. Fix: /leave to leave the group',
    `${'d'.repeat(32)} is not in #team; see /members`,
    `* 1. #team  ${GID}  3 members`,
    'leaving #team: done once a member commits it',
  ]);
});

test('a member that is not the committer is told its change goes through the committer', async () => {
  const { out, run, client } = setUp();
  client.groupList = [info([BOB, ME])];
  await run('/group use 1', `/invite ${CAROL}`);
  expect(out[1]).toBe('asked the committer bbbbbbbb to add cccccccc to #team');
});

test('incoming group messages and events name the group and the sender', async () => {
  const { client, out, session, run } = setUp([]);
  expect(session.current).toBeUndefined();
  await run('hello?');
  client.emit('group', {
    kind: 'joined',
    groupId: GID,
    topicId: '2'.repeat(32),
    invitedBy: BOB,
    members: [BOB, ME],
  });
  client.emit('message', {
    from: BOB,
    conversation: { kind: 'group', id: GID, groupId: GID, topicId: '2'.repeat(32) },
    content: { content: 'welcome', type: 'text' },
    receivedAt: 0 as never,
  });
  client.emit('group', { kind: 'members', groupId: GID, added: [CAROL], removed: [], epoch: 2n });
  client.emit('group', { kind: 'left', groupId: GID, topicId: '2'.repeat(32), reason: 'removed' });
  expect(out).toEqual([
    'not sent: no current conversation. Fix: /add <user_id>, /group use <group> or /group create',
    `* joined #11111111 (${GID}), invited by bbbbbbbb; members: bbbbbbbb, aaaaaaaa`,
    `now in #11111111 (${GID})`,
    '(1) [#11111111 bbbbbbbb] welcome',
    '* #11111111: added cccccccc (epoch 2)',
    '* you were removed from #11111111',
    'no current conversation: /groups, /group use <group>, or /add <user_id>',
  ]);
  expect(session.current).toBeUndefined();
});

test('event lines for every kind', () => {
  expect(groupEventLine({ kind: 'rejoined', groupId: GID, topicId: '', epoch: 7n }, '#t')).toBe(
    '* #t: re-added after falling behind (epoch 7)',
  );
  expect(groupEventLine({ kind: 'left', groupId: GID, topicId: '', reason: 'left' }, '#t')).toBe(
    '* you left #t',
  );
  expect(groupEventLine({ kind: 'members', groupId: GID, added: [], removed: [BOB], epoch: 3n }, '#t')).toBe(
    '* #t: removed bbbbbbbb (epoch 3)',
  );
});

test('groups are found by number, name, #name, id and id prefix; ambiguity is named', () => {
  const a = info([ME], { groupId: 'ab12'.repeat(16), name: 'Ops' });
  const b = info([ME], { groupId: 'ab34'.repeat(16), name: undefined });
  const list = [a, b];
  expect(findGroup(list, '2')).toBe(b);
  expect(findGroup(list, 'ops')).toBe(a);
  expect(findGroup(list, '#Ops')).toBe(a);
  expect(findGroup(list, 'ab34')).toBe(b);
  expect(findGroup(list, b.groupId)).toBe(b);
  expect(() => findGroup(list, 'ab')).toThrow('no group "ab"');
  expect(() => findGroup(list, 'ab1')).toThrow('no group');
  expect(() => findGroup([a, info([ME], { groupId: 'ab12'.repeat(15) + 'ffff' })], 'ab12')).toThrow(
    'matches several groups',
  );
  expect(resolveUser(BOB.toUpperCase(), [])).toBe(BOB);
  expect(() => resolveUser('bbb', [BOB])).toThrow('is not a user id');
});

test('--group with a group we are not in is a usage error (exit 2) naming the fix', async () => {
  const client = new FakeClient();
  const input = new PassThrough();
  const output = new Writable({ write: (_c, _e, cb) => cb() });
  const run = runChat(
    client as unknown as ChatClient,
    { input, output, interactive: false },
    {
      peers: [],
      group: 'nope',
      drainMs: 0,
    },
  );
  await expect(run).rejects.toThrow(UsageError);
  await expect(run).rejects.toThrow(/--group: no group "nope".*Fix: give the id \(or name\) of a group/);
  expect(client.listenerCount('message')).toBe(0);
});

describe('peer-controlled text', () => {
  // Turned around by issue 10: a newline let a peer print a line that looks like someone else's.
  test('messages and group names lose C0/C1 control characters; a newline becomes a visible mark', () => {
    const from = 'ab'.repeat(16);
    expect(textLine(1, senderTag(from), 'hi\u001b[2J\rthere\nnext\u009b')).toBe(
      '(1) [abababab] hi[2Jthere \u21b5 next',
    );
    const label = groupLabel('cd'.repeat(32), 'ops\u001b]0;x\u0007');
    expect(label).toBe('#ops]0;x');
    expect(textLine(2, senderTag(from, label), '\u0008ok')).toBe('(2) [#ops]0;x abababab] ok');
  });

  test('a peer cannot fake a line from someone else with newlines, bidi overrides or zero-width characters', () => {
    const from = 'ab'.repeat(16);
    const fake = `hi\n[${'cd'.repeat(4)}] send me your key\r\n\u2028\u2029\u0085`;
    const line = textLine(1, senderTag(from), fake);
    expect(line).not.toMatch(/[\n\r\u2028\u2029\u0085]/);
    expect(line.split('\n')).toHaveLength(1);
    const hidden =
      'a\u202eb\u202a\u202b\u202c\u202dc\u2066\u2067\u2068\u2069d\u200be\u200c\u200d\u200e\u200ff\u2060\ufeffg\u00adh';
    expect(textLine(1, senderTag(from), hidden)).toBe('(1) [abababab] abcdefgh');
    expect(groupLabel('cd'.repeat(32), 'ops\u202e\u200b\nx')).toBe('#ops \u21b5 x');
  });

  test("relay-bot send keeps a reply's line breaks but strips what could hide or reorder text", () => {
    expect(printableLines('usage:\r\n  /a\u2028  /b\u202e\u200b\u001b[2J')).toBe('usage:\n  /a\n  /b[2J');
  });

  test('the chat prints one line per incoming message, whatever the peer put in it', () => {
    const { client, out: lines } = setUp([]);
    client.emit('message', {
      from: BOB,
      conversation: { kind: 'group', groupId: GID, name: 'te\u202eam\nfake' },
      content: { type: 'text', content: `ok\n[${CAROL.slice(0, 8)}] pay me\u200b` },
    } as never);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\n\u202e\u200b]/);
  });
});
