/**
 * The MLS context: everything the engine's pure functions need besides state and input.
 * One per process (or per test); nothing in it changes after creation.
 */
import {
  defaultCryptoProvider,
  defaultKeyPackageEqualityConfig,
  defaultKeyRetentionConfig,
  defaultPaddingConfig,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} from 'ts-mls';
import type { CiphersuiteImpl, ClientConfig, CryptoProvider } from 'ts-mls';
import { relayAuthenticationService } from './auth.js';
import { createNodeCryptoProvider } from './provider-node.js';

export const RELAY_CIPHERSUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;
export const RELAY_CIPHERSUITE_ID = 0x0001;

/** PROTOCOL.md §4: KeyPackage lifetime and accepted clock skew, in seconds. */
export const KEY_PACKAGE_NOT_BEFORE_BACKDATE = 60 * 60;
export const KEY_PACKAGE_LIFETIME = 28 * 24 * 60 * 60;
export const CLOCK_SKEW = 10 * 60;

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
    // 4 past epochs for late application messages (PROTOCOL.md §9 "Delivery").
    keyRetentionConfig: defaultKeyRetentionConfig,
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
