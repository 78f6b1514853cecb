/** Native ESM: ts-mls and noble 2.x ship only ES modules. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // The package's entry points, as in tsconfig.json "paths".
    '^relay-bot$': '<rootDir>/index.ts',
    '^relay-bot/(relay|store|testing)$': '<rootDir>/framework/$1/index.ts',
    '^relay-bot/plugins$': '<rootDir>/plugins/index.ts',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: [
    '<rootDir>/test/**/*.test.ts',
    '<rootDir>/framework/**/*.test.ts',
    '<rootDir>/plugins/**/*.test.ts',
    '<rootDir>/bots/**/*.test.ts',
  ],
  testTimeout: 60000,
};
