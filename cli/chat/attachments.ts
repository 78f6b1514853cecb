/**
 * Files in `relay-bot chat`: `/attach <path>` sends one (inline up to 64 KiB, else encrypted into
 * the configured blob store), and a received attachment is opened (size and digest checked, a blob
 * downloaded with a cap and decrypted) and saved under the download directory, never over an
 * existing file. One that fails a check is not saved; the chat says why.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  FetchPolicy,
  openAttachment,
  sealAttachment,
  type AttachmentContent,
  type AttachmentFetchOptions,
  type BlobStore,
  type ContentInput,
  type OpenAttachmentOptions,
} from '../../framework/relay/index.js';
import { mediaTypeOf } from '../../index.js';
import { ChatError } from './resolve.js';

/** ChatFiles' options: the blob store (for sending large files and reading its own URLs), limits, where to save. */
export interface ChatFilesOptions {
  store?: BlobStore | undefined;
  /** Where received files are saved (created when missing). */
  downloadDir: string;
  maxBytes?: number | undefined;
  fetchTimeoutMs?: number | undefined;
  /** Where downloads may connect beyond public addresses (attachments.fetch). */
  fetch?: AttachmentFetchOptions | undefined;
  fetchBlob?: OpenAttachmentOptions['fetchBlob'];
}

/** The file name to save under: no directories, no control or shell-hostile characters. */
export function safeFileName(name: string): string {
  const base = path.basename(name.replace(/\\/g, '/'));
  const clean = base.replace(/[^\w.\- ]/g, '_').replace(/^\.+/, '_');
  return clean.slice(0, 120) || 'attachment';
}

function sizeText(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(1)} KiB`
      : `${(n / 1048576).toFixed(1)} MiB`;
}

export class ChatFiles {
  private readonly fetchPolicy: FetchPolicy;

  constructor(private readonly options: ChatFilesOptions) {
    this.fetchPolicy = new FetchPolicy({
      ...options.fetch,
      origins: options.store?.origins?.() ?? [],
    });
  }

  /** /attach <path>: reads the file and posts it with `post` (the session's sender); the line to print. */
  async attach(file: string, post: (c: ContentInput) => Promise<void>): Promise<string> {
    if (file.trim() === '') throw new ChatError('usage: /attach <path>');
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw new ChatError(
        `cannot read ${file}: ${(e as Error).message}. Fix: give the path of a readable file`,
      );
    }
    const name = path.basename(file);
    let content: AttachmentContent;
    try {
      content = await sealAttachment(
        { name, mediaType: mediaTypeOf(name), bytes },
        { store: this.options.store, storeSetting: 'attachments.store in the config' },
      );
    } catch (e) {
      throw new ChatError(`not sent: ${(e as Error).message}`);
    }
    await post(content);
    return `sent ${name} (${sizeText(bytes.length)})`;
  }

  /** Opens and saves a received attachment; the text to show for it. */
  async save(content: AttachmentContent): Promise<string> {
    const o = this.options;
    const opened = await openAttachment(content, {
      ...(o.store ? { stores: [o.store] } : {}),
      ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}),
      ...(o.fetchTimeoutMs !== undefined ? { timeoutMs: o.fetchTimeoutMs } : {}),
      ...(o.fetchBlob ? { fetchBlob: o.fetchBlob } : {}),
      fetchPolicy: this.fetchPolicy,
    });
    const name = safeFileName(content.name);
    if (!opened.ok) return `file ${name} dropped (${opened.reason.replace('attachment_', '')} check failed)`;
    await mkdir(o.downloadDir, { recursive: true });
    const ext = path.extname(name);
    const stem = name.slice(0, name.length - ext.length);
    for (let i = 0; ; i++) {
      const target = path.join(o.downloadDir, i === 0 ? name : `${stem}-${i}${ext}`);
      try {
        // 'wx': never overwrite a file saved earlier (or anything else already there).
        await writeFile(target, opened.file.bytes, { flag: 'wx' });
        return `file ${name} (${sizeText(opened.file.size)}, ${opened.file.mediaType}) saved to ${target}`;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i >= 999) throw e;
      }
    }
  }
}
