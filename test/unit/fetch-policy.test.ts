/**
 * Where attachment downloads may connect (issue #14): the address classifier on IPv4, IPv6 and the
 * IPv6 forms that carry an IPv4 address; the policy's settings and their errors; and fetchBlob
 * deciding on the address it connects to (one resolution, checked and used; no redirects).
 */
import { createServer, type Server } from 'node:http';
import {
  classifyAddress,
  ConfigError,
  fetchBlob,
  FetchPolicy,
  parseAllowHost,
  type HostResolver,
} from '../../framework/relay/index.js';

test.each([
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.0.0.1', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'cgnat'],
  ['100.100.100.200', 'cgnat'],
  ['100.128.0.1', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'link-local'],
  ['192.0.2.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['2606:4700:4700::1111', 'public'],
  ['2001:db8::1', 'reserved'],
  ['2001::1', 'reserved'],
  ['fc00::1', 'private'],
  ['fd12:3456::1', 'private'],
  ['fe80::1', 'link-local'],
  ['febf::1', 'link-local'],
  ['fec0::1', 'private'],
  ['ff02::1', 'multicast'],
  ['3fff::1', 'public'],
  ['4000::1', 'reserved'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:169.254.169.254', 'link-local'],
  ['::ffff:a9fe:a9fe', 'link-local'],
  ['::ffff:10.1.2.3', 'private'],
  ['::ffff:8.8.8.8', 'public'],
  ['0:0:0:0:0:ffff:127.0.0.1', 'loopback'],
  ['::127.0.0.1', 'loopback'],
  ['64:ff9b::127.0.0.1', 'loopback'],
  ['64:ff9b::808:808', 'public'],
  ['2002:7f00:1::', 'loopback'],
  ['2002:a9fe:a9fe::1', 'link-local'],
  ['2002:808:808::1', 'public'],
  ['not an address', 'reserved'],
])('%s is %s', (address, cls) => {
  expect(classifyAddress(address)).toBe(cls);
});

describe('FetchPolicy', () => {
  test('default: public addresses only', () => {
    const p = new FetchPolicy();
    expect(p.allowsAddress('8.8.8.8')).toBe(true);
    for (const a of [
      '127.0.0.1',
      '10.0.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '::1',
      'fd00::1',
      '::ffff:10.0.0.1',
    ])
      expect([a, p.allowsAddress(a)]).toEqual([a, false]);
  });

  test('allowPrivateNetworks opens private ranges, not loopback, link-local (metadata) or CGNAT', () => {
    const p = new FetchPolicy({ allowPrivateNetworks: true });
    for (const a of ['10.0.0.1', '192.168.1.1', 'fd00::1', '::ffff:172.16.0.1'])
      expect([a, p.allowsAddress(a)]).toEqual([a, true]);
    for (const a of ['127.0.0.1', '169.254.169.254', '100.100.100.200', '::1', 'fe80::1', '0.0.0.0'])
      expect([a, p.allowsAddress(a)]).toEqual([a, false]);
  });

  test('allowHosts: blocks match the address (mapped forms too), names match the URL host', () => {
    const p = new FetchPolicy({ allowHosts: ['10.1.0.0/16', '127.0.0.1', 'fd00::/8', 'Files.Internal.'] });
    expect(p.allowsAddress('10.1.200.3')).toBe(true);
    expect(p.allowsAddress('::ffff:10.1.200.3')).toBe(true);
    expect(p.allowsAddress('10.2.0.1')).toBe(false);
    expect(p.allowsAddress('127.0.0.1')).toBe(true);
    expect(p.allowsAddress('127.0.0.2')).toBe(false);
    expect(p.allowsAddress('fd12::1')).toBe(true);
    expect(p.trustsUrl(new URL('https://files.internal/x'))).toBe(true);
    expect(p.trustsUrl(new URL('https://FILES.internal./x'))).toBe(true);
    expect(p.trustsUrl(new URL('https://sub.files.internal/x'))).toBe(false);
  });

  test('own store origins are trusted by scheme, host and port', () => {
    const p = new FetchPolicy({ origins: ['http://127.0.0.1:9000/bucket/prefix/'] });
    expect(p.trustsUrl(new URL('http://127.0.0.1:9000/other/0123'))).toBe(true);
    expect(p.trustsUrl(new URL('http://127.0.0.1:9001/'))).toBe(false);
    expect(p.trustsUrl(new URL('https://127.0.0.1:9000/'))).toBe(false);
  });

  test.each([
    ['http://files.internal', 'allowHosts[0]'],
    ['files.internal:8080', 'allowHosts[0]'],
    ['10.0.0.0/33', 'allowHosts[0]'],
    ['10.0.0/8', 'allowHosts[0]'],
    ['', 'allowHosts[0]'],
  ])('a bad allowHosts entry %j is a ConfigError naming it and the fix', (entry, where) => {
    expect(parseAllowHost(entry)).toBeUndefined();
    const make = (): FetchPolicy => new FetchPolicy({ allowHosts: [entry] });
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(`attachments.fetch.${where}`);
    expect(make).toThrow('Fix: use a host name like files.internal');
  });

  test('allowPrivateNetworks must be a boolean', () => {
    expect(() => new FetchPolicy({ allowPrivateNetworks: 'yes' as unknown as boolean })).toThrow(
      'attachments.fetch.allowPrivateNetworks is true or false',
    );
  });
});

describe('fetchBlob decides on the address it connects to', () => {
  let server: Server;
  let port: number;
  const hits: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/redirect') {
        res.writeHead(302, { location: `http://127.0.0.1:${port}/target` }).end();
        return;
      }
      res.writeHead(200).end('blob');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => {
    hits.length = 0;
  });

  /** A resolver giving `answers` in turn (the last one again after), counting its calls. */
  function dns(...answers: string[][]): HostResolver & { calls: number } {
    const r = Object.assign(
      async () => {
        const a = answers[Math.min(r.calls++, answers.length - 1)]!;
        return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
      },
      { calls: 0 },
    );
    return r;
  }

  test('a name that resolves to loopback is refused before any request', async () => {
    const resolve = dns(['127.0.0.1']);
    expect(await fetchBlob(`http://blob.example:${port}/a`, 100, undefined, { resolve })).toEqual({
      ok: false,
      reason: 'refused',
    });
    expect(resolve.calls).toBe(1);
    expect(hits).toEqual([]);
  });

  test.each([
    ['decimal IPv4', (p: number) => `http://2130706433:${p}/f`],
    ['hex and short IPv4', (p: number) => `http://0x7f.1:${p}/f`],
    ['0.0.0.0 (reaches the host itself)', (p: number) => `http://0.0.0.0:${p}/f`],
    ['mapped IPv6 in hex', (p: number) => `http://[::ffff:7f00:1]:${p}/f`],
    ['IPv6 loopback', (p: number) => `http://[::1]:${p}/f`],
  ])('%s is refused with no request sent', async (_what, urlOf) => {
    expect(await fetchBlob(urlOf(port), 100)).toEqual({ ok: false, reason: 'refused' });
    expect(hits).toEqual([]);
  });

  test('a name with one public and one loopback address is refused', async () => {
    const resolve = dns(['8.8.8.8', '127.0.0.1']);
    expect(await fetchBlob(`http://blob.example:${port}/b`, 100, undefined, { resolve })).toEqual({
      ok: false,
      reason: 'refused',
    });
    expect(hits).toEqual([]);
  });

  test('one resolution, checked and connected to: a later answer (rebinding) is never used', async () => {
    // Allowed: 127.0.0.1 only. The name answers 127.0.0.1 once, then an address not allowed.
    const policy = new FetchPolicy({ allowHosts: ['127.0.0.1/32'] });
    const resolve = dns(['127.0.0.1'], ['10.9.9.9']);
    const read = await fetchBlob(`http://blob.example:${port}/c`, 100, undefined, { policy, resolve });
    expect(read.ok && Buffer.from(read.bytes).toString()).toBe('blob');
    expect(resolve.calls).toBe(1);
    expect(hits).toEqual(['/c']);
    // The reverse: the first answer is not allowed, so nothing is sent whatever comes after.
    const rebinding = dns(['10.9.9.9'], ['127.0.0.1']);
    const refused = await fetchBlob(`http://blob.example:${port}/d`, 100, undefined, {
      policy,
      resolve: rebinding,
    });
    expect(refused).toEqual({ ok: false, reason: 'refused' });
    expect(hits).toEqual(['/c']);
  });

  test('a redirect is not followed (a public server cannot bounce the bot to loopback)', async () => {
    const policy = new FetchPolicy({ allowHosts: ['127.0.0.1'] });
    expect(await fetchBlob(`http://127.0.0.1:${port}/redirect`, 100, undefined, { policy })).toEqual({
      ok: false,
      reason: 'fetch',
    });
    expect(hits).toEqual(['/redirect']);
  });

  test('a trusted name connects wherever it resolves', async () => {
    const policy = new FetchPolicy({ allowHosts: ['blob.example'] });
    const read = await fetchBlob(`http://blob.example:${port}/e`, 100, undefined, {
      policy,
      resolve: dns(['127.0.0.1']),
    });
    expect(read.ok).toBe(true);
    expect(hits).toEqual(['/e']);
  });
});
