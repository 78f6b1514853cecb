/**
 * MLS application-message round trip (encrypt by one member, process by the other) with ts-mls's
 * default provider and with our node:crypto provider, against the floor neither can beat: one
 * Ed25519 sign + verify and one AES-128-GCM encrypt + decrypt of the same size on node:crypto,
 * measured in the same run so machine noise hits all of them.
 */
import {
  createCipheriv,
  createDecipheriv,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import {
  createMlsContext,
  createOneToOne,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  processMessage,
  type GroupSession,
  type MlsContext,
} from '../framework/relay/mls/index.js';
import { heading, measureAsync, note, report } from './harness.js';
import { identity } from './identity.js';

const PLAINTEXT_BYTES = 200;
const ITERATIONS = 1500;
const WARMUP = 100;

async function session(ctx: MlsContext): Promise<{ alice: GroupSession; bob: GroupSession }> {
  const now = Math.floor(Date.now() / 1000);
  const bobKp = await generateKeyPackage(ctx, identity(), now);
  const created = await createOneToOne(ctx, identity(), bobKp.keyPackage, { now });
  const joined = await joinFromWelcome(ctx, created.welcome, created.ratchetTree, [bobKp]);
  return { alice: created.state, bob: joined.state };
}

async function roundTripMs(ctx: MlsContext, plaintext: Uint8Array): Promise<number> {
  let { alice, bob } = await session(ctx);
  // A long conversation: both states advance, so every call works on a fresh generation.
  const t = await measureAsync(
    async () => {
      const out = await encryptApplication(ctx, alice, plaintext);
      const got = await processMessage(ctx, bob, out.message);
      alice = out.state;
      bob = got.state;
    },
    { iterations: ITERATIONS, warmup: WARMUP },
  );
  return t.meanMs;
}

async function rawBoundMs(size: number): Promise<number> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = randomBytes(16);
  const aad = randomBytes(40);
  const data = randomBytes(size);
  const t = await measureAsync(
    async () => {
      const sig = sign(null, data, privateKey);
      if (!verify(null, data, publicKey, sig)) throw new Error('raw verify failed');
      const nonce = randomBytes(12);
      const c = createCipheriv('aes-128-gcm', key, nonce);
      c.setAAD(aad);
      const ct = Buffer.concat([c.update(data), c.final()]);
      const d = createDecipheriv('aes-128-gcm', key, nonce);
      d.setAAD(aad);
      d.setAuthTag(c.getAuthTag());
      Buffer.concat([d.update(ct), d.final()]);
    },
    { iterations: ITERATIONS * 4, warmup: WARMUP },
  );
  return t.meanMs;
}

export async function run(): Promise<void> {
  const plaintext = new Uint8Array(randomBytes(PLAINTEXT_BYTES));
  const nodeCtx = await createMlsContext({ provider: 'node' });
  const defaultCtx = await createMlsContext({ provider: 'default' });

  // The MLS content is padded to 256 bytes (ts-mls default), so the raw bound uses 256 too.
  const raw = await rawBoundMs(256);
  const viaDefault = await roundTripMs(defaultCtx, plaintext);
  const viaNode = await roundTripMs(nodeCtx, plaintext);

  heading(`app-message round trip, ${PLAINTEXT_BYTES}-byte plaintext, ${ITERATIONS} messages`);
  const bound = { name: 'raw bound', value: raw };
  report('raw bound (Ed25519 sign+verify, AES-128-GCM enc+dec)', raw, 'ms');
  report('mls round trip (default provider)', viaDefault, 'ms', bound);
  report('mls round trip (node provider)', viaNode, 'ms', bound);
  note(`node provider is ${(viaDefault / viaNode).toFixed(2)}x faster than default; target ≤ 3x raw bound`);
  console.log(
    `  mls round trip (node provider): ${viaNode.toFixed(3)} ms (${(viaNode / raw).toFixed(2)} x raw bound)`,
  );
  console.log(
    `  mls round trip (default provider): ${viaDefault.toFixed(3)} ms (${(viaDefault / raw).toFixed(2)} x raw bound)`,
  );
}
