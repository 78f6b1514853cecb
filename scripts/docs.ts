/**
 * `npm run docs`: the API reference of the public entry points (package.json `exports`) with
 * TypeDoc, into docs/api/ (open docs/api/index.html). Not committed; not in the package.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Application, OptionDefaults } from 'typedoc';
import { apiEntryPoints } from './api-entry-points.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'docs', 'api');

const app = await Application.bootstrapWithPlugins({
  entryPoints: apiEntryPoints(root).map((e) => e.source),
  tsconfig: path.join(root, 'tsconfig.build.json'),
  out,
  name: 'relay-bot',
  readme: 'none',
  excludePrivate: true,
  excludeInternal: true,
  githubPages: false,
  // Comments name the bot decorators (@Bot, @OnError…) in prose; they are not TSDoc tags.
  blockTags: [...OptionDefaults.blockTags, '@Bot', '@OnError', '@OnJoin', '@OnLeave', '@OnMembers'],
  treatWarningsAsErrors: true,
});
const project = await app.convert();
if (!project) {
  process.stderr.write('docs: TypeDoc could not convert the project\n');
  process.exit(1);
}
await app.generateDocs(project, out);
if (app.logger.hasErrors()) process.exit(1);
process.stdout.write(`docs: ${path.relative(process.cwd(), out)}/index.html\n`);
