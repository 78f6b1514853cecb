/**
 * Every symbol the public entry points export (package.json `exports`, read by
 * scripts/api-entry-points.ts) has a doc comment with at least a one-line summary, so the TypeDoc
 * reference (`npm run docs`) says what each thing is. There are no exceptions: the list of symbols
 * that had none when the check came was worked off (issue #15), so a new export without a comment
 * fails here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { apiEntryPoints, type EntryPoint } from '../../scripts/api-entry-points.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** First line of the JSDoc text of `node` (TypeScript attaches JSDoc to the statement). */
function statementSummary(node: ts.Node): string {
  const docs = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc);
  return (ts.getTextOfJSDocComment(docs.at(-1)?.comment) ?? '').split('\n')[0]!.trim();
}

/**
 * The summary line of one export. `export * as ns` aliases a module, to which TypeScript attaches no
 * doc comment; TypeDoc reads that namespace's comment from the export statement, so we do too.
 */
function summaryOf(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  const namespaceExport = symbol.declarations?.find(ts.isNamespaceExport);
  if (namespaceExport) return statementSummary(namespaceExport.parent);
  const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  return ts.displayPartsToString(target.getDocumentationComment(checker)).split('\n')[0]!.trim();
}

/** "<import specifier> <export name>" of every exported symbol without a summary line. */
function undocumentedExports(entries: EntryPoint[]): { undocumented: string[]; exported: number } {
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
      if (summaryOf(symbol, checker) === '') undocumented.push(`${entry.specifier} ${symbol.name}`);
    }
  }
  return { undocumented: undocumented.sort(), exported };
}

let result: ReturnType<typeof undocumentedExports>;

beforeAll(() => {
  result = undocumentedExports(apiEntryPoints(ROOT));
}, 120_000);

test('the entry points come from package.json exports and export something', () => {
  const entries = apiEntryPoints(ROOT);
  expect(entries.map((e) => e.specifier)).toContain('relay-bot');
  expect(result.exported).toBeGreaterThan(100);
});

test('every exported symbol of every public entry point has a doc comment', () => {
  expect(result.undocumented).toEqual([]);
});

test('the check finds what lacks a summary: plain and re-exported symbols, namespace re-exports', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'api-docs-'));
  try {
    const write = (name: string, text: string): string => {
      writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    write('parts.ts', '/** Documented where declared. */\nexport const kept = 1;\nexport const bare = 2;\n');
    const source = write(
      'entry.ts',
      [
        '/** Documented. */',
        'export const documented = 1;',
        'export function undocumented(): void {}',
        "export { kept, bare } from './parts.js';",
        '/** A namespace documented on its export statement. */',
        "export * as documentedNs from './parts.js';",
        "export * as bareNs from './parts.js';",
        '',
      ].join('\n'),
    );
    const fixture = undocumentedExports([{ specifier: 'fixture', source }]);
    expect(fixture.exported).toBe(6);
    expect(fixture.undocumented).toEqual(['fixture bare', 'fixture bareNs', 'fixture undocumented']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
