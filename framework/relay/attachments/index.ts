/** Attachments (PROTOCOL.md §8): sealing and opening files, and the blob stores behind large ones. */
export { BLOB_NAME, type BlobRead, type BlobStore } from './blob-store.js';
export { classifyAddress, type AddressClass } from './address-class.js';
export {
  ALLOW_HOSTS_FIX,
  DEFAULT_FETCH_POLICY,
  FetchPolicy,
  parseAllowHost,
  type AttachmentFetchOptions,
  type FetchPolicyOptions,
} from './fetch-policy.js';
export { fetchBlob, type FetchBlobOptions, type HostResolver } from './http-fetch.js';
export { LocalDirectoryBlobStore, type LocalDirectoryBlobStoreOptions } from './local-blob-store.js';
export { MAX_PRESIGNED_URL_SECONDS, S3BlobStore, type S3BlobStoreOptions } from './s3-blob-store.js';
export {
  ATTACHMENT_DROP_REASONS,
  AttachmentDropCounters,
  DEFAULT_ATTACHMENT_FETCH_TIMEOUT_MS,
  DEFAULT_MAX_ATTACHMENT_BYTES,
  GCM_TAG_LENGTH,
  openAttachment,
  sealAttachment,
  sha256Hex,
  type AttachmentDropReason,
  type AttachmentFile,
  type OpenAttachmentOptions,
  type OpenedAttachment,
  type ReceivedFile,
  type SealAttachmentOptions,
} from './files.js';
