/**
 * config/assistant.yaml as `relay-bot start --config config/assistant.yaml` reads it: it validates,
 * names the assistant module, and its options construct the bot. (Importing the module by that path
 * needs tsx or a build, which jest has neither of; `relay-bot start` was tried by hand.)
 */
import path from 'node:path';
import { loadConfig } from '../../cli/config.js';
import { AssistantBot, checkOptions, type AssistantBotOptions } from '../../bots/assistant/index.js';

const FILE = path.join(process.cwd(), 'config', 'assistant.yaml');

test('config/assistant.yaml names the assistant, with valid options and a long handler time', () => {
  const config = loadConfig({ file: FILE, env: {} });
  expect(config.bot.module).toBe(path.join(process.cwd(), 'bots', 'assistant', 'index.js'));
  expect(config.limits.handlerTimeoutMs).toBe(180_000);
  // Every option in the file is one the bot knows, with a valid value.
  const options = checkOptions(config.bot.options);
  expect(options.systemPrompt).toMatch(/^You are a helpful assistant/);
  expect(options.maxTurns).toBe(10);
  // As the loader constructs it (it passes bot.options); no server in this environment.
  expect(new AssistantBot(config.bot.options as AssistantBotOptions, { env: {} }).server).toBeUndefined();
});
