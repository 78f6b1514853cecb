/** Native ESM: ts-mls and noble 2.x ship only ES modules. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
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
