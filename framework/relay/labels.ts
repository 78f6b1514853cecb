/** Domain-separation labels of PROTOCOL.md. One place, so a typo cannot split the protocol. */
export const LABEL = {
  userId: 'relay-uid-v1',
  topic: 'relay-topic-v1',
  bundle: 'relay-bundle-v1',
  seal: 'relay-seal-v1',
  envelopeAad: 'relay-env-v1',
  pow: 'relay-pow-v1',
  access: 'relay-access-v1',
  sealedSenderKey: 'relay-sskey-v1',
  rejoin: 'relay-rejoin-v2',
} as const;

export const PROTOCOL_VERSION = 1;
/** PROTOCOL.md §5: default limit on an MQTT payload. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 256 * 1024;
/** PROTOCOL.md §5: accepted clock difference for sent_at. */
export const SENT_AT_WINDOW_SECONDS = 600;
/**
 * PROTOCOL.md §4: default proof-of-work difficulty, in leading zero bits: what a client demands of envelopes
 * without an access token (RelayClient `powBits`), published as pow_bits in its key bundle.
 */
export const DEFAULT_POW_BITS = 18;
/** A sender refuses to mine more than this (PROTOCOL.md §4). */
export const MAX_MINED_POW_BITS = 28;
export const PADDING_BLOCK = 256;
/**
 * InnerPayload msg_type values (PROTOCOL.md §6): 3 Welcome, 5 MLS message, 6 group Welcome, 7 GROUP_REJOIN.
 * Any other value is dropped as `inner_payload`.
 */
export const MSG_TYPE = { welcome: 3, message: 5, groupWelcome: 6, groupRejoin: 7 } as const;
