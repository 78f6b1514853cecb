/**
 * The assistant bot: a language-model agent over any OpenAI-compatible chat-completions server.
 * `bot: { module: ../bots/assistant/index.js }` runs it (config/assistant.yaml); the model client,
 * its errors and the event-stream decoder are exported for agents of your own.
 */
import { AssistantBot } from './assistant-bot.js';

export {
  AssistantBot,
  NOT_CONFIGURED,
  mentionedQuestion,
  modelErrorReply,
  type AssistantBotDeps,
} from './assistant-bot.js';
export { ModelError, MODEL_ERROR_REASONS, reasonForStatus, type ModelErrorReason } from './errors.js';
export { boundHistory, chatMessages, readHistory } from './history.js';
export type { AssistantSession, HistoryBounds, Turn } from './history.js';
export {
  ModelClient,
  parseCompletion,
  parseStreamChunk,
  DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
} from './model-client.js';
export type { ChatCallOptions, ChatMessage, ModelClientOptions } from './model-client.js';
export { checkOptions, type AssistantBotOptions } from './options.js';
export { chatCompletionsUrl, describeServer, resolveModelServer } from './server-config.js';
export type { Environment, ModelServer, ModelServerOptions } from './server-config.js';
export { research, RESEARCH_PROMPT, type ResearchDeps } from './research.js';
export { SseDecoder, type SseEvent } from './sse.js';
export { TypingIndicator, DEFAULT_TYPING_EVERY_MS } from './typing.js';

export default AssistantBot;
