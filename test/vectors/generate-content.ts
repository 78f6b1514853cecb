/**
 * Writes test/vectors/content.json: known answers for PROTOCOL.md §8 (every content type's exact
 * wire JSON, group padding, inputs a receiver must drop) and a profile-bearing KeyBundle (§4 key 7)
 * signed by the protocol.json identity (seed 01 × 32). Run `npx tsx test/vectors/generate-content.ts`
 * only when the encoding is meant to change; test/unit/content-vectors.test.ts checks the file.
 */
import { writeFileSync } from 'node:fs';
import { asPowBits, asUnixSeconds } from '../../framework/relay/brand.js';
import { concatBytes, toHex, utf8 } from '../../framework/relay/bytes.js';
import { encodeKeyBundle, signKeyBundle } from '../../framework/relay/bundle.js';
import { decodeContent, encodeContent, type AppContent } from '../../framework/relay/content.js';
import { identityFromSecrets } from '../../framework/relay/identity.js';
import { formatProfile, type Profile } from '../../framework/relay/profile.js';

const dec = new TextDecoder();
const file = new Uint8Array([0x68, 0x69, 0x0a]); // "hi\n"

const messages: Array<{ name: string; content: AppContent }> = [
  { name: 'text', content: { type: 'text', content: 'hello', id: 'm1' } },
  { name: 'text reply', content: { type: 'text', content: '/echo hi', id: 'm2', replyTo: 'm1' } },
  { name: 'reaction', content: { type: 'reaction', content: '👍', replyTo: 'm1', id: 'r1' } },
  { name: 'reaction removed', content: { type: 'reaction', content: '👍', replyTo: 'm1', remove: true } },
  { name: 'edit', content: { type: 'edit', content: 'hello, world', replyTo: 'm1', id: 'e1' } },
  { name: 'delete', content: { type: 'delete', content: '', replyTo: 'm1' } },
  { name: 'delete for old clients', content: { type: 'delete', content: '(message deleted)', replyTo: 'm1' } },
  { name: 'typing start', content: { type: 'typing', state: 'start', content: '' } },
  { name: 'typing stop', content: { type: 'typing', state: 'stop', content: '' } },
  { name: 'stream part', content: { type: 'stream', id: 's1', seq: 0, content: 'Once upon ', replyTo: 'm2' } },
  { name: 'stream last part', content: { type: 'stream', id: 's1', seq: 1, content: 'a time.', done: true } },
  {
    name: 'task working',
    content: { type: 'task', id: 't1', replyTo: 'm2', state: 'working', content: 'fetching', progress: 0.25 },
  },
  {
    name: 'task completed',
    content: { type: 'task', id: 't1', replyTo: 'm2', state: 'completed', content: 'the answer is 42' },
  },
  { name: 'task-cancel', content: { type: 'task-cancel', replyTo: 't1', content: '' } },
  {
    name: 'actions',
    content: {
      type: 'actions',
      id: 'a1',
      content: 'Deploy to production?',
      actions: [
        { id: 'yes', label: 'Deploy' },
        { id: 'no', label: 'Cancel' },
      ],
    },
  },
  { name: 'action', content: { type: 'action', replyTo: 'a1', content: 'yes' } },
  {
    name: 'attachment inline',
    content: {
      type: 'attachment',
      name: 'hi.txt',
      mime: 'text/plain',
      size: 3,
      sha256: '98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4',
      source: { kind: 'inline', data: file },
      content: '[file hi.txt]',
    },
  },
  {
    name: 'attachment at a URL',
    content: {
      type: 'attachment',
      name: 'report.pdf',
      mime: 'application/pdf',
      size: 123456,
      sha256: '0f'.repeat(32),
      source: {
        kind: 'url',
        url: 'https://files.example/abc',
        key: new Uint8Array(32).fill(0x11),
        nonce: new Uint8Array(12).fill(0x22),
      },
      content: '',
    },
  },
  { name: 'unknown type, shown as text', content: { type: 'x-poll', content: 'Lunch: pizza or sushi?' } },
];

const rejected: Array<{ why: string; json: string }> = [
  { why: 'no content on a text message', json: '{"id":"m1"}' },
  { why: 'id over 128 characters', json: JSON.stringify({ content: 'x', id: 'i'.repeat(129) }) },
  { why: 'type over 64 characters', json: JSON.stringify({ content: 'x', type: 't'.repeat(65) }) },
  { why: 'reaction over 32 bytes', json: JSON.stringify({ type: 'reaction', reply_to: 'm1', content: 'é'.repeat(17) }) },
  { why: 'reaction without reply_to', json: '{"type":"reaction","content":"👍"}' },
  { why: 'edit without reply_to', json: '{"type":"edit","content":"x"}' },
  { why: 'typing state', json: '{"type":"typing","state":"paused"}' },
  { why: 'stream seq negative', json: '{"type":"stream","id":"s1","seq":-1,"content":"x"}' },
  { why: 'stream seq not an integer', json: '{"type":"stream","id":"s1","seq":0.5,"content":"x"}' },
  { why: 'task state', json: '{"type":"task","id":"t1","reply_to":"m1","state":"done","content":"x"}' },
  { why: 'task progress over 1', json: '{"type":"task","id":"t1","reply_to":"m1","state":"working","content":"","progress":1.5}' },
  { why: '11 actions', json: JSON.stringify({ type: 'actions', content: 'p', actions: Array.from({ length: 11 }, (_, i) => ({ id: `b${i}`, label: 'b' })) }) },
  { why: 'attachment key of 31 bytes', json: JSON.stringify({ type: 'attachment', name: 'f', mime: 'x/y', size: 1, sha256: '00'.repeat(32), url: 'https://x.example/f', key: Buffer.alloc(31).toString('base64'), nonce: Buffer.alloc(12).toString('base64') }) },
  { why: 'attachment digest does not match data', json: JSON.stringify({ type: 'attachment', name: 'f', mime: 'x/y', size: 3, sha256: '00'.repeat(32), data: Buffer.from(file).toString('base64') }) },
];

const identity = identityFromSecrets(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
const profile: Profile = {
  bot: true,
  description: 'Reminds you of things',
  commands: [
    { name: 'remind', args: '<minutes:int> <text…>', description: 'reminds you in a few minutes' },
    { name: 'help', args: '[command]', description: 'this list; /help <command> shows how to use one' },
  ],
};
const fields = {
  keyPackage: new Uint8Array([0, 1, 0, 2, 0, 3, 0, 4]),
  sealedSenderKey: identity.sealPublic,
  issuedAt: asUnixSeconds(1_795_840_000),
  powBits: asPowBits(18),
  displayName: 'Reminder',
  profile,
};
const bundle = signKeyBundle(fields, identity);
const cbor = encodeKeyBundle(bundle);
const { signature: _signature, ...unsigned } = bundle;
const withoutSignature = encodeKeyBundle({ ...unsigned, signature: new Uint8Array(64) });

const out = {
  description:
    'Known answers for PROTOCOL.md §8 application content and the §4 KeyBundle profile (key 7), generated by test/vectors/generate-content.ts from framework/relay. "wire" is the exact JSON our encoder writes (1:1, no pad); "padded_length" the length with a group "pad" (256-byte blocks). "rejected" must each be dropped as content. The bundle is signed by the protocol.json identity (seed 01 x 32) over "relay-bundle-v1" || the map without key 5; the KeyPackage is a fixed stand-in.',
  messages: messages.map(({ name, content }) => {
    const wire = dec.decode(encodeContent(content));
    decodeContent(utf8(wire));
    return { name, wire, padded_length: encodeContent(content, { padTo: 256 }).length };
  }),
  rejected,
  profile_bundle: {
    ed25519_seed: '01'.repeat(32),
    key_package: toHex(fields.keyPackage),
    sealed_sender_key: toHex(fields.sealedSenderKey),
    issued_at: fields.issuedAt,
    pow_bits: fields.powBits,
    display_name: fields.displayName,
    profile_json: formatProfile(profile),
    signed_bytes: toHex(
      concatBytes(
        utf8('relay-bundle-v1'),
        // The placeholder's key-5 entry (0x05 0x58 0x40 + 64 bytes) cut out, header count one less.
        concatBytes(new Uint8Array([withoutSignature[0]! - 1]), cutKey5(withoutSignature)),
      ),
    ),
    signature: toHex(bundle.signature),
    cbor: toHex(cbor),
  },
};

function cutKey5(map: Uint8Array): Uint8Array {
  const hex = toHex(map.subarray(1));
  const entry = '055840' + '00'.repeat(64);
  const at = hex.indexOf(entry);
  if (at < 0 || at % 2 !== 0) throw new Error('no placeholder signature entry');
  return Buffer.from(hex.slice(0, at) + hex.slice(at + entry.length), 'hex');
}

writeFileSync(new URL('./content.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
process.stdout.write(`wrote ${messages.length} messages, ${rejected.length} rejected, 1 bundle\n`);
