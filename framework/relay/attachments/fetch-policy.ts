/**
 * Where a receiver may download attachment blobs from. The URL comes from the network, so on its
 * own a peer could make a bot GET any address its host reaches (cloud metadata at 169.254.169.254,
 * admin endpoints on 127.0.0.1 or 10.x): issue #14. By default only public addresses are
 * connected to; the operator opens more by host name, by address block, or for private networks,
 * and the receiver's own blob store origins are always allowed (local development with s3rver or a
 * directory served on 127.0.0.1 keeps working). The check is on the address actually connected to:
 * http-fetch.ts resolves, checks and connects to that same address.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import { addressBytes, classifyBytes, inBlock, parseBlock, type AddressBlock } from './address-class.js';

/** BotAttachmentOptions.fetch / the `attachments.fetch` config section. */
export interface AttachmentFetchOptions {
  /**
   * Where downloads may go even when the address is not public: host names (exact, e.g.
   * `files.internal`; the name is trusted whatever it resolves to) and IP addresses or CIDR blocks
   * (e.g. `10.1.2.3`, `10.0.0.0/8`, `fd00::/8`; matched against the address connected to).
   */
  allowHosts?: readonly string[];
  /**
   * Also connect to private addresses (10/8, 172.16/12, 192.168/16, fc00::/7). Loopback,
   * link-local (cloud metadata) and 100.64/10 still need an allowHosts entry.
   */
  allowPrivateNetworks?: boolean;
}

/** FetchPolicy's options: the operator's settings plus the origins of the receiver's own stores. */
export interface FetchPolicyOptions extends AttachmentFetchOptions {
  /** `scheme://host[:port]` origins whose URLs are fetched wherever they resolve (own blob stores). */
  origins?: readonly string[];
  /** How errors name the settings (default `attachments.fetch`). */
  setting?: string;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

/** How to write an allowHosts entry, for error messages. */
export const ALLOW_HOSTS_FIX =
  'use a host name like files.internal (no scheme, port or path), an address like 10.1.2.3, or a block like 10.0.0.0/8 or fd00::/8';

/** One allowHosts entry: an address block, or a lowercase host name; undefined if it is neither. */
export function parseAllowHost(entry: unknown): { block: AddressBlock } | { name: string } | undefined {
  if (typeof entry !== 'string') return undefined;
  const text = entry.trim().toLowerCase();
  if (text.includes('/') || isIP(text) !== 0) {
    const block = parseBlock(text);
    return block ? { block } : undefined;
  }
  const name = text.replace(/\.$/, '');
  return HOST_NAME.test(name) ? { name } : undefined;
}

/** A URL's host as a lowercase name or bare address: no brackets, no trailing dot. */
export function hostOf(url: URL): string {
  return url.hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

/** Which downloads may happen: see the module comment. Immutable once built. */
export class FetchPolicy {
  private readonly names: ReadonlySet<string>;
  private readonly blocks: readonly AddressBlock[];
  private readonly origins: ReadonlySet<string>;
  private readonly privateNetworks: boolean;

  constructor(options: FetchPolicyOptions = {}) {
    const setting = options.setting ?? 'attachments.fetch';
    const names = new Set<string>();
    const blocks: AddressBlock[] = [];
    const hosts: unknown = options.allowHosts ?? [];
    if (!Array.isArray(hosts)) {
      throw new ConfigError(
        `${setting}.allowHosts is a list. Fix: e.g. allowHosts: [files.internal, 10.0.0.0/8]`,
      );
    }
    hosts.forEach((entry: unknown, i) => {
      const parsed = parseAllowHost(entry);
      if (!parsed) {
        throw new ConfigError(
          `${setting}.allowHosts[${i}] ${JSON.stringify(entry)} is not a host name, an IP address or a CIDR block. Fix: ${ALLOW_HOSTS_FIX}`,
        );
      }
      if ('block' in parsed) blocks.push(parsed.block);
      else names.add(parsed.name);
    });
    const priv: unknown = options.allowPrivateNetworks ?? false;
    if (typeof priv !== 'boolean') {
      throw new ConfigError(`${setting}.allowPrivateNetworks is true or false`);
    }
    const origins = new Set<string>();
    for (const o of options.origins ?? []) {
      try {
        const u = new URL(o);
        if (u.protocol === 'http:' || u.protocol === 'https:') origins.add(u.origin);
      } catch {
        // Not a URL: nothing to allow. Stores validate their own URLs.
      }
    }
    this.names = names;
    this.blocks = blocks;
    this.origins = origins;
    this.privateNetworks = priv;
  }

  /** Whether `url`'s host is trusted by name (an own store's origin, an allowHosts name). */
  trustsUrl(url: URL): boolean {
    return this.origins.has(url.origin) || this.names.has(hostOf(url));
  }

  /** Whether a download may connect to `address` (an IP address in text form). */
  allowsAddress(address: string): boolean {
    const bytes = addressBytes(address);
    if (!bytes) return false;
    const cls = classifyBytes(bytes);
    if (cls === 'public' || (cls === 'private' && this.privateNetworks)) return true;
    // A mapped ::ffff:10.1.2.3 is matched by a 10.0.0.0/8 entry too.
    const v4 = bytes.length === 16 && bytes.subarray(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
    return this.blocks.some((b) => inBlock(bytes, b) || (v4 && inBlock(bytes.subarray(12), b)));
  }
}

/** Public addresses only: what a receiver does with no settings. */
export const DEFAULT_FETCH_POLICY = new FetchPolicy();
