/**
 * What kind of network an IP address is on, so an attachment download (a URL from the network)
 * connects only to public addresses unless the operator opened more (issue #14, request forgery).
 * Addresses are compared as bytes: IPv4 as 4, IPv6 as 16. IPv6 forms that carry an IPv4 address
 * (mapped ::ffff:a.b.c.d, the old compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are
 * classified by the IPv4 address they carry: `::ffff:127.0.0.1` is loopback.
 */
import { isIP } from 'node:net';

/**
 * `public`: routable on the internet. `private`: RFC 1918, IPv6 unique-local (fc00::/7) and the old
 * site-local fec0::/10. The rest are never the address of a blob server a stranger names:
 * `loopback`, `link-local` (169.254/16 with cloud metadata, fe80::/10), `cgnat` (100.64/10, also
 * where some clouds put metadata), `unspecified` (0.0.0.0/8, ::), `multicast` (224/4, ff00::/8) and
 * `reserved` (documentation, benchmarking, 240/4 and broadcast, IPv6 outside 2000::/3, 2001::/23).
 */
export type AddressClass =
  'public' | 'private' | 'loopback' | 'link-local' | 'cgnat' | 'unspecified' | 'multicast' | 'reserved';

/** An address block: the first `bits` bits of `bytes` (4 bytes for IPv4, 16 for IPv6). */
export interface AddressBlock {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** The bytes of an IPv4 or IPv6 address in text form (no brackets, no zone); undefined if not one. */
export function addressBytes(text: string): Uint8Array | undefined {
  const kind = isIP(text);
  if (kind === 4) return Uint8Array.from(text.split('.').map(Number));
  if (kind !== 6) return undefined;
  let head = text;
  let tail: number[] = [];
  // A trailing dotted quad (::ffff:1.2.3.4) is the last two groups.
  const quad = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const v4 = quad[1]!.split('.').map(Number);
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, quad.index + 1);
    // Keep a '::' that ends the head; drop a lone ':' separator.
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const groups = (s: string | undefined): number[] =>
    s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16));
  const l = groups(left);
  const r = [...groups(right), ...tail];
  const all =
    right === undefined
      ? [...l, ...tail]
      : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Whether `address` (bytes) lies in `block`; an IPv4 block never holds an IPv6 address or back. */
export function inBlock(address: Uint8Array, block: AddressBlock): boolean {
  if (address.length !== block.bytes.length) return false;
  const full = block.bits >> 3;
  for (let i = 0; i < full; i++) if (address[i] !== block.bytes[i]) return false;
  const rest = block.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[full]! & mask) === (block.bytes[full]! & mask);
}

/** `a.b.c.d/n` or `x::y/n` (or a bare address, a block of one); undefined if malformed. */
export function parseBlock(text: string): AddressBlock | undefined {
  const slash = text.indexOf('/');
  const bytes = addressBytes(slash < 0 ? text : text.slice(0, slash));
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  if (slash < 0) return { bytes, bits: max };
  const bitsText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) return undefined;
  return { bytes, bits: Number(bitsText) };
}

function table(entries: readonly (readonly [string, AddressClass])[]): [AddressBlock, AddressClass][] {
  return entries.map(([cidr, c]) => [parseBlock(cidr)!, c]);
}

/** IPv4 special-purpose blocks (IANA registry); anything else is public. */
const V4 = table([
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
]);

/** IPv6 blocks checked before "outside 2000::/3 is reserved"; embedded IPv4 forms come first. */
const V6 = table([
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'],
  ['100::/64', 'reserved'],
  ['2001::/23', 'reserved'],
  ['2001:db8::/32', 'reserved'],
  ['fc00::/7', 'private'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'],
  ['ff00::/8', 'multicast'],
]);
const GLOBAL_UNICAST = parseBlock('2000::/3')!;

/** IPv6 prefixes whose addresses carry an IPv4 address, and where it sits. */
const EMBEDDED_V4 = [
  { block: parseBlock('::ffff:0:0/96')!, at: 12 },
  { block: parseBlock('::/96')!, at: 12 },
  { block: parseBlock('64:ff9b::/96')!, at: 12 },
  { block: parseBlock('2002::/16')!, at: 2 },
];

/** The class of `address` (bytes); see AddressClass. */
export function classifyBytes(address: Uint8Array): AddressClass {
  if (address.length === 4) return V4.find(([b]) => inBlock(address, b))?.[1] ?? 'public';
  // :: and ::1 lie in ::/96 too: their own entries win.
  const own = V6.find(([b]) => b.bits === 128 && inBlock(address, b));
  if (own) return own[1];
  const embedded = EMBEDDED_V4.find((e) => inBlock(address, e.block));
  if (embedded) return classifyBytes(address.subarray(embedded.at, embedded.at + 4));
  const special = V6.find(([b]) => inBlock(address, b));
  if (special) return special[1];
  return inBlock(address, GLOBAL_UNICAST) ? 'public' : 'reserved';
}

/** The class of an address in text form; anything that is not an IP address is `reserved`. */
export function classifyAddress(text: string): AddressClass {
  const bytes = addressBytes(text);
  return bytes ? classifyBytes(bytes) : 'reserved';
}
