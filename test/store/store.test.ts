import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import { openPgStore, openSqliteStore, postgresAvailable, tempDir } from './helpers.js';
import { describeRelayStore } from './store-suite.js';

const STATE_KEY = 'correct horse battery staple';
/** Every test opens a fresh database: the production cost (state-key.test.ts) would add a minute. */
const CHEAP_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };

describeRelayStore('memory', async () => ({ store: new MemoryRelayStore(), cleanup: async () => {} }));

describe('SQLite', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  describeRelayStore('sqlite', () => openSqliteStore(dir.path));
  describeRelayStore('sqlite, encrypted at rest', () =>
    openSqliteStore(dir.path, { stateKey: STATE_KEY, scrypt: CHEAP_SCRYPT }),
  );
});

const pgUp = await postgresAvailable('the Postgres store suite');

(pgUp ? describe : describe.skip)('Postgres', () => {
  describeRelayStore('postgres', () => openPgStore());
  describeRelayStore('postgres, encrypted at rest', () =>
    openPgStore({ stateKey: new Uint8Array(32).fill(7) }),
  );
});
