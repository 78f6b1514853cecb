/**
 * The MLS context: everything the engine's pure functions need besides state and input.
 * One per process (or per test); nothing in it changes after creation.
 */
import {
  defaultCryptoProvider,
  defaultKeyPackageEqualityConfig,
  defaultPaddingConfig,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} from 'ts-mls';
import type { CiphersuiteImpl, ClientConfig, CryptoProvider, KeyRetentionConfig } from 'ts-mls';
import { relayAuthenticationService } from './auth.js';
import { createNodeCryptoProvider } from './provider-node.js';

export const RELAY_CIPHERSUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;
export const RELAY_CIPHERSUITE_ID = 0x0001;

/** PROTOCOL.md §4: KeyPackage lifetime and accepted clock skew, in seconds. */
export const KEY_PACKAGE_NOT_BEFORE_BACKDATE = 60 * 60;
export const KEY_PACKAGE_LIFETIME = 28 * 24 * 60 * 60;
export const CLOCK_SKEW = 10 * 60;

/**
 * How late a message may arrive and still decrypt (ts-mls KeyRetentionConfig). With replicas a
 * sender's messages are spread over several processes by the broker, so a replica that lags leaves
 * gaps in the sender's ratchet that the others skip; the keys of the skipped generations must
 * survive until the lagging replica gets to them (docs/protocol.md §14 "Key retention"):
 * - retainKeysForGenerations: skipped generations kept per ratchet. A replica holds at most its
 *   receive window (DEFAULT_RECEIVE_MAXIMUM, 64) of one sender's messages unprocessed; 128 covers
 *   two lagging replicas' full windows. Measured: 27 gaps at most with two replicas and a burst of
 *   100 on a loaded machine, where ts-mls's default of 10 lost messages ('Desired gen in the past').
 *   Each kept key costs 42 stored bytes, so a ratchet stores at most ~5.4 KB of them.
 * - maximumForwardRatchetSteps: how far one message may skip ahead, which the replica that is
 *   ahead does over every generation the others hold; at least the retention, twice for margin.
 *   Each step is one KDF call, so it also bounds the work a made-up generation costs.
 * - retainKeysForEpochs: PROTOCOL.md §9 "Delivery", 4 past epochs.
 */
export const RELAY_KEY_RETENTION: Readonly<KeyRetentionConfig> = Object.freeze({
  retainKeysForGenerations: 128,
  maximumForwardRatchetSteps: 256,
  retainKeysForEpochs: 4,
});

export interface MlsContext {
  readonly cipherSuite: CiphersuiteImpl;
  readonly clientConfig: ClientConfig;
  readonly providerName: 'node' | 'default';
}

export interface MlsContextOptions {
  /** 'node' (default) runs the hot path on node:crypto; 'default' is ts-mls's own provider. */
  readonly provider?: 'node' | 'default';
}

export async function createMlsContext(opts: MlsContextOptions = {}): Promise<MlsContext> {
  const providerName = opts.provider ?? 'node';
  const provider: CryptoProvider =
    providerName === 'node' ? createNodeCryptoProvider() : defaultCryptoProvider;
  const cipherSuite = await getCiphersuiteImpl(getCiphersuiteFromName(RELAY_CIPHERSUITE), provider);
  const clientConfig: ClientConfig = {
    keyRetentionConfig: RELAY_KEY_RETENTION,
    // ts-mls checks lifetimes against its own clock only on send; we check them ourselves with an
    // explicit `now` (keypackage.ts), so receipt checks stay deterministic and testable.
    lifetimeConfig: {
      maximumTotalLifetime: BigInt(KEY_PACKAGE_NOT_BEFORE_BACKDATE + KEY_PACKAGE_LIFETIME),
      validateLifetimeOnReceive: false,
    },
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    paddingConfig: defaultPaddingConfig,
    authService: relayAuthenticationService,
  };
  return { cipherSuite, clientConfig, providerName };
}
