/**
 * Every symbol the public entry points export (package.json `exports`, read by
 * scripts/api-entry-points.ts) has a doc comment with at least a one-line summary, so the TypeDoc
 * reference (`npm run docs`) says what each thing is. Symbols that had none when the check came
 * are listed in api-docs.undocumented.json: the list may only shrink (a newly exported symbol
 * without a comment fails, and so does a listed one that got its comment, until it is taken off).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { apiEntryPoints } from '../../scripts/api-entry-points.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const KNOWN_GAPS_FILE = path.join(ROOT, 'test', 'unit', 'api-docs.undocumented.json');

/** "<import specifier> <export name>" of every exported symbol without a summary line. */
function undocumentedExports(): { undocumented: string[]; exported: number } {
  const entries = apiEntryPoints(ROOT);
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(ROOT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  )!;
  const program = ts.createProgram(
    entries.map((e) => e.source),
    config.options,
  );
  const checker = program.getTypeChecker();
  const undocumented: string[] = [];
  let exported = 0;
  for (const entry of entries) {
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry.source)!)!;
    for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
      exported++;
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      const summary = ts.displayPartsToString(target.getDocumentationComment(checker)).split('\n')[0]!.trim();
      if (summary === '') undocumented.push(`${entry.specifier} ${symbol.name}`);
    }
  }
  return { undocumented: undocumented.sort(), exported };
}

const knownGaps = JSON.parse(readFileSync(KNOWN_GAPS_FILE, 'utf8')) as string[];
let result: ReturnType<typeof undocumentedExports>;

beforeAll(() => {
  result = undocumentedExports();
}, 120_000);

test('the entry points come from package.json exports and export something', () => {
  const entries = apiEntryPoints(ROOT);
  expect(entries.map((e) => e.specifier)).toContain('relay-bot');
  expect(result.exported).toBeGreaterThan(100);
});

test('every exported symbol added since the check has a doc comment', () => {
  const added = result.undocumented.filter((s) => !knownGaps.includes(s));
  expect(added).toEqual([]);
});

test('the known gaps only shrink: a symbol documented (or gone) since is taken off the list', () => {
  const fixed = knownGaps.filter((s) => !result.undocumented.includes(s));
  expect(fixed).toEqual([]);
});
