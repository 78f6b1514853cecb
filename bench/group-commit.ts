/**
 * Group commits on the pure MLS engine (no broker, no store): for groups of 2 … 250 members, the
 * committer's empty commit (UpdatePath only: the key refresh), its single-Add commit, a member
 * processing each of them, and the added member joining from the Welcome. Baseline in the same
 * run: one step of an UpdatePath done by hand on node:crypto, i.e. one Ed25519 sign + verify and
 * one HPKE-shaped seal + open (X25519 DH, HKDF-SHA256, AES-128-GCM of a 32-byte path secret).
 *
 * Groups are built as a client builds them (createGroup, one commit adding everyone by value), but
 * only two members ever join from that Welcome: the committer and the member processing commits,
 * the last leaf (so its path secret is decrypted at the root). Every repetition starts from the
 * same states: the engine's functions return new states and never change the ones they are given.
 */
import {
  createCipheriv,
  createDecipheriv,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  commitGroup,
  createGroup,
  createMlsContext,
  encodeSession,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  processGroupMessage,
  type GeneratedKeyPackage,
  type GroupSession,
  type MlsContext,
} from '../framework/relay/mls/index.js';
import { heading, measure, note, numbersFromEnv, percentile, report } from './harness.js';
import { identity } from './identity.js';

/** `BENCH_GROUP_SIZES=2,10` measures those sizes only. */
const SIZES = numbersFromEnv('BENCH_GROUP_SIZES', [2, 10, 50, 100, 250]);
/** Repetitions per figure: at least MIN_REPS, then more while under SECONDS_PER_FIGURE. */
const MIN_REPS = 5;
const MAX_REPS = 30;
const SECONDS_PER_FIGURE = 0.6;
const MAX_MEMBERS = 250;

const now = (): number => Math.floor(Date.now() / 1000);

/** Median (and count) of `fn` timed MIN_REPS … MAX_REPS times, after one untimed call. */
async function medianMs(fn: () => Promise<unknown>): Promise<{ median: number; reps: number }> {
  await fn();
  const times: number[] = [];
  const start = performance.now();
  while (
    times.length < MIN_REPS ||
    (times.length < MAX_REPS && performance.now() - start < SECONDS_PER_FIGURE * 1000)
  ) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: percentile(times, 0.5), reps: times.length };
}

/** The raw cost of one UpdatePath step: sign + verify, plus an HPKE-shaped seal + open. */
function pathStepFloorMs(): number {
  const signer = generateKeyPairSync('ed25519');
  const recipient = generateKeyPairSync('x25519');
  const content = randomBytes(400);
  const pathSecret = randomBytes(32);
  const info = Buffer.from('relay-bench path step');
  const t = measure(
    () => {
      const sig = sign(null, content, signer.privateKey);
      if (!verify(null, content, signer.publicKey, sig)) throw new Error('raw verify failed');
      // Seal: ephemeral key, DH with the recipient, key and nonce from HKDF, AES-128-GCM.
      const eph = generateKeyPairSync('x25519');
      const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: recipient.publicKey });
      const okm = Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), info, 28));
      const c = createCipheriv('aes-128-gcm', okm.subarray(0, 16), okm.subarray(16));
      const ct = Buffer.concat([c.update(pathSecret), c.final()]);
      const tag = c.getAuthTag();
      // Open: DH with the ephemeral public key, the same derivation, decrypt.
      const shared2 = diffieHellman({ privateKey: recipient.privateKey, publicKey: eph.publicKey });
      const okm2 = Buffer.from(hkdfSync('sha256', shared2, Buffer.alloc(0), info, 28));
      const d = createDecipheriv('aes-128-gcm', okm2.subarray(0, 16), okm2.subarray(16));
      d.setAuthTag(tag);
      Buffer.concat([d.update(ct), d.final()]);
    },
    { seconds: 1, warmup: 200 },
  );
  return t.meanMs;
}

interface Built {
  committer: GroupSession;
  /** The last leaf; undefined for a group of one. */
  member?: GroupSession;
  seconds: number;
}

/** A group of `size` members in which only the committer and the last member hold a state. */
async function build(ctx: MlsContext, size: number): Promise<Built> {
  const start = performance.now();
  const created = await createGroup(ctx, identity(), { now: now() });
  if (size < 2) return { committer: created.state, seconds: (performance.now() - start) / 1000 };
  const packages: GeneratedKeyPackage[] = [];
  for (let i = 1; i < size; i++) packages.push(await generateKeyPackage(ctx, identity(), now()));
  const commit = await commitGroup(ctx, created.state, { adds: packages.map((p) => p.keyPackage) });
  const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [packages.at(-1)!], {
    members: { min: 2, max: MAX_MEMBERS },
  });
  return { committer: commit.state, member: joined.state, seconds: (performance.now() - start) / 1000 };
}

export async function run(): Promise<void> {
  const ctx = await createMlsContext({ provider: 'node' });
  const floor = pathStepFloorMs();
  const baseline = { name: 'path step', value: floor };
  heading('commit create/process by group size (pure engine, node provider; median of reps)');
  report('baseline: one path step (Ed25519 s+v, X25519 seal+open)', floor, 'ms');
  note(
    'Add: a group of N-1 gains its N-th member; key refresh: an empty commit (UpdatePath) in a group of N',
  );
  note('"member" is the last leaf: it decrypts its path secret at the root');
  for (const size of SIZES) {
    const base = await build(ctx, size - 1);
    heading(`N = ${size} (setup: a group of ${size - 1} built in ${base.seconds.toFixed(1)} s)`);

    // Add: the committer adds the N-th member; the last member follows; the newcomer joins.
    const kps = await Promise.all(
      Array.from({ length: 8 }, () => generateKeyPackage(ctx, identity(), now())),
    );
    let k = 0;
    const nextKp = (): GeneratedKeyPackage => kps[k++ % kps.length]!;
    const add = await medianMs(() => commitGroup(ctx, base.committer, { adds: [nextKp().keyPackage] }));
    report(`Add commit: create at committer (${add.reps} reps)`, add.median, 'ms', baseline);
    const joiner = nextKp();
    const addCommit = await commitGroup(ctx, base.committer, { adds: [joiner.keyPackage] });
    if (base.member) {
      const member = base.member;
      const processed = await medianMs(() => processGroupMessage(ctx, member, addCommit.commit));
      report(`Add commit: process at member`, processed.median, 'ms', baseline);
    } else {
      note('Add commit: no other member to process it in a group of one');
    }
    const join = await medianMs(() =>
      joinFromWelcome(ctx, addCommit.welcome!, addCommit.ratchetTree, [joiner], {
        members: { min: 2, max: MAX_MEMBERS },
      }),
    );
    report(`Add: joinFromWelcome at the newcomer`, join.median, 'ms', baseline);

    // Key refresh in the group of N: the newcomer's state is the member that processes.
    const committer = addCommit.state;
    const newcomer = (
      await joinFromWelcome(ctx, addCommit.welcome!, addCommit.ratchetTree, [joiner], {
        members: { min: 2, max: MAX_MEMBERS },
      })
    ).state;
    const refresh = await medianMs(() => commitGroup(ctx, committer, {}));
    report(`key refresh (empty commit): create (${refresh.reps} reps)`, refresh.median, 'ms', baseline);
    const refreshCommit = await commitGroup(ctx, committer, {});
    const processed = await medianMs(() => processGroupMessage(ctx, newcomer, refreshCommit.commit));
    report(`key refresh (empty commit): process at member`, processed.median, 'ms', baseline);

    // What every receiver of a group message does besides the network: decrypt it, and encode the
    // new state that is stored with it (the sender encrypts and encodes too).
    const app = await encryptApplication(ctx, committer, new Uint8Array(randomBytes(200)));
    const opened = await medianMs(() => processGroupMessage(ctx, newcomer, app.message));
    report(`app message (200 B): process at member`, opened.median, 'ms');
    const bytes = encodeSession(newcomer).length;
    const encoded = await medianMs(async () => encodeSession(newcomer));
    report(`encodeSession of a member's state (${(bytes / 1024).toFixed(1)} KB)`, encoded.median, 'ms');
  }
  note(
    'these groups are freshly built: one commit added everyone, so the parent nodes off the ' +
      "committer's path are blank and an UpdatePath encrypts to each other member's leaf (N-1 HPKE " +
      'seals, not log2 N) until commits from other leaves fill the tree; a join verifies every leaf',
  );
}
