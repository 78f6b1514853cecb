/**
 * The API report: one file per entry point under api/, listing every exported declaration as
 * api-extractor sees it in the built .d.ts files (dist/). Reviewing a change to the public API means
 * reviewing the diff of these files.
 *
 *   npm run api:check    builds, then fails if any entry's API differs from its checked-in report
 *   npm run api:update   builds, then rewrites the reports (commit them with the change)
 *
 * The entry points are read from package.json "exports", so a new subpath gets a report too.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig, ExtractorLogLevel, type IConfigFile } from '@microsoft/api-extractor';

const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const REPORT_FOLDER = path.join(ROOT, 'api');
const TEMP_FOLDER = path.join(ROOT, 'dist', '.api-report');

interface Entry {
  /** As a user imports it: relay-bot, relay-bot/relay… */
  specifier: string;
  /** The built declaration file the export resolves to. */
  declarations: string;
  /** api/<reportName>.api.md */
  reportName: string;
}

function entries(): Entry[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string>;
  };
  return Object.entries(pkg.exports)
    .filter(([, target]) => target.endsWith('.js'))
    .map(([sub, target]) => {
      const specifier = sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
      return {
        specifier,
        declarations: path.join(ROOT, target.replace(/\.js$/, '.d.ts')),
        reportName: specifier.replace('/', '-'),
      };
    });
}

function configFor(entry: Entry): IConfigFile {
  return {
    projectFolder: ROOT,
    mainEntryPointFilePath: entry.declarations,
    compiler: {
      overrideTsconfig: {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023'],
          types: ['node'],
          strict: true,
          skipLibCheck: true,
        },
        files: [entry.declarations],
      },
    },
    apiReport: {
      enabled: true,
      reportFileName: entry.reportName,
      reportFolder: REPORT_FOLDER,
      reportTempFolder: TEMP_FOLDER,
      includeForgottenExports: false,
    },
    docModel: { enabled: false },
    dtsRollup: { enabled: false },
    tsdocMetadata: { enabled: false },
    // The report is the declarations only: release tags and TSDoc style are not checked here.
    messages: {
      compilerMessageReporting: { default: { logLevel: ExtractorLogLevel.Error } },
      extractorMessageReporting: {
        default: { logLevel: ExtractorLogLevel.None, addToApiReportFile: false },
      },
      tsdocMessageReporting: { default: { logLevel: ExtractorLogLevel.None, addToApiReportFile: false } },
    },
  };
}

function run(update: boolean): boolean {
  mkdirSync(REPORT_FOLDER, { recursive: true });
  let ok = true;
  for (const entry of entries()) {
    if (!existsSync(entry.declarations)) {
      console.error(`${entry.declarations} is missing. Fix: npm run build first`);
      return false;
    }
    const config = ExtractorConfig.prepare({
      configObject: configFor(entry),
      configObjectFullPath: undefined,
      packageJsonFullPath: path.join(ROOT, 'package.json'),
    });
    const result = Extractor.invoke(config, { localBuild: update, showVerboseMessages: false });
    const report = path.relative(ROOT, path.join(REPORT_FOLDER, `${entry.reportName}.api.md`));
    if (!result.succeeded) {
      ok = false;
      console.error(
        `${entry.specifier}: the public API differs from ${report}. ` +
          'Fix: review the change (diff the report with dist/.api-report/), then npm run api:update and commit the report',
      );
    } else {
      console.log(`${entry.specifier}: ${result.apiReportChanged ? 'updated' : 'unchanged'} ${report}`);
    }
  }
  return ok;
}

if (!run(process.argv.includes('--update'))) process.exitCode = 1;
