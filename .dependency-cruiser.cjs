/**
 * The dependency check (`npm run deps:check`, part of `npm run lint`): imports point down the layers
 * of ARCHITECTURE.md, nothing imports in a cycle, and user code (bots/, plugins/, cli/) reaches the
 * framework through its entry points, not into a layer's inner files.
 *
 *   cli/            → the root (index.ts) and the relay/store/testing entries
 *   index.ts        → each layer's index.ts, plugins/index.ts
 *   bots/           → the root only
 *   plugins/        → framework/bot and framework/relay through their index.ts (the root re-exports
 *                     the plugins, so importing it from a plugin would be a cycle)
 *   framework/testing → bot, store, relay
 *   framework/bot   → relay (events, errors, ids; no wire, crypto, MLS or transport modules)
 *   framework/store → relay (the RelayStore interface it implements)
 *   framework/relay → nothing of ours above it
 * Type-only imports count: a type from a higher layer is as much an upward dependency.
 *
 * Justified exceptions live in .dependency-cruiser-known-violations.json (`--ignore-known`), edge by
 * edge, so a new violation through the same files still fails. Today: none (the last one, the
 * type-only cycle transport.ts ↔ transport-parking.ts, went when the transport's types moved to
 * transport-types.ts). Regenerate the file with
 * `npx depcruise-baseline index.ts framework cli plugins bots` once an exception is gone.
 */
const ENTRY = '^(index\\.ts|framework/(relay|store|bot|testing)/index\\.ts|plugins/index\\.ts)$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle makes load order matter and the layers meaningless.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'relay-is-the-bottom',
      severity: 'error',
      comment: 'framework/relay knows nothing of TypeORM, bots, the CLI or user code.',
      from: { path: '^framework/relay/' },
      to: { path: '^(framework/(store|bot|testing)/|plugins/|bots/|cli/|index\\.ts$)' },
    },
    {
      name: 'store-above-relay-only',
      severity: 'error',
      from: { path: '^framework/store/' },
      to: { path: '^(framework/(bot|testing)/|plugins/|bots/|cli/|index\\.ts$)' },
    },
    {
      name: 'bot-above-relay-only',
      severity: 'error',
      comment: 'The bot layer takes a RelayClient and its events; it does not open stores.',
      from: { path: '^framework/bot/' },
      to: { path: '^(framework/(store|testing)/|plugins/|bots/|cli/|index\\.ts$)' },
    },
    {
      name: 'bot-knows-no-protocol-internals',
      severity: 'error',
      comment:
        'ARCHITECTURE.md: framework/bot knows no CBOR, MQTT or MLS internals (wire, crypto, mls, transport).',
      from: { path: '^framework/bot/' },
      to: {
        path: '^framework/relay/(mls|wire|crypto|transport)/|^framework/relay/(codec|envelope|seal|seal-node-primitives|x25519-node|pow|pow-worker|sha256-midstate|access|bundle|transport|transport-[a-z-]+|embedded-broker)\\.ts$',
      },
    },
    {
      name: 'testing-below-user-code',
      severity: 'error',
      from: { path: '^framework/testing/' },
      to: { path: '^(plugins/|bots/|cli/|index\\.ts$)' },
    },
    {
      name: 'plugins-below-bots-and-cli',
      severity: 'error',
      from: { path: '^plugins/' },
      to: { path: '^(bots/|cli/|framework/testing/|index\\.ts$)' },
    },
    {
      name: 'user-code-uses-entry-points',
      severity: 'error',
      comment:
        'bots/, plugins/ and cli/ import a layer through its index.ts (or the root), never its inner files.',
      from: { path: '^(bots|plugins|cli)/' },
      to: { path: '^framework/', pathNot: ENTRY },
    },
    {
      name: 'bots-use-the-root',
      severity: 'error',
      comment: "Bots are written as a user writes them: everything from 'relay-bot' (index.ts).",
      from: { path: '^bots/' },
      to: { path: '^(framework|plugins|cli)/' },
    },
    {
      name: 'cli-gets-the-bot-layer-from-the-root',
      severity: 'error',
      from: { path: '^cli/' },
      to: { path: '^framework/bot/' },
    },
    {
      name: 'no-dev-dependencies-at-run-time',
      severity: 'error',
      comment: 'What ships (dist/) must not need a devDependency.',
      from: { path: '^(index\\.ts|framework|plugins|bots|cli)/?' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-undeclared-packages',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown', 'unknown', 'undetermined'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|test|bench)/|\\.test\\.ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
