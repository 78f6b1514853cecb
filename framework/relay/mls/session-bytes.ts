/**
 * The byte writer and reader of our stored session formats (state.ts, group-state-parts.ts).
 * Big-endian, length-prefixed; the writer grows one buffer instead of collecting small chunks,
 * because a group's secret trees are hundreds of small fields written on every message.
 */
import { CodecError } from '../errors.js';

/** Unused bytes a finished writer may leave behind its result rather than copying it. */
const SPARE_KEPT = 4096;

/**
 * A plain Uint8Array of `n` bytes not zero-filled first: the writer overwrites every byte it hands
 * out and never exposes the rest (finish() ends the view at what was written). Saves clearing
 * tens of KB per group message.
 */
function uninitialized(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private length = 0;

  constructor(initialCapacity = 256) {
    this.buf = uninitialized(initialCapacity);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = uninitialized(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  u8(n: number): void {
    this.room(1);
    this.buf[this.length++] = n;
  }

  u32(n: number): void {
    this.room(4);
    this.view.setUint32(this.length, n, false);
    this.length += 4;
  }

  u64(n: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.length, n, false);
    this.length += 8;
  }

  /** A field of at most 255 bytes, with its u8 length. */
  short(bytes: Uint8Array): void {
    if (bytes.length > 255) throw new CodecError('field too long for the session format');
    this.u8(bytes.length);
    this.raw(bytes);
  }

  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** A field with its u32 length. */
  long(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }

  /** Writes a u32 length, then whatever `body` writes, and sets the length to what it wrote. */
  withLength(body: () => void): void {
    this.u32(0);
    const start = this.length;
    body();
    this.view.setUint32(start - 4, this.length - start, false);
  }

  /**
   * The bytes written. A view of the writer's buffer when little of it is unused (callers size it
   * well: a group's live part is the size of the last one), else a copy, so that no large spare
   * buffer is kept alive behind a small result.
   */
  finish(): Uint8Array {
    const spare = this.buf.length - this.length;
    if (spare > SPARE_KEPT) return this.buf.slice(0, this.length);
    // The spare bytes were never written: whatever memory held before must not travel along.
    this.buf.fill(0, this.length);
    return this.buf.subarray(0, this.length);
  }
}

export class ByteReader {
  private offset = 0;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what = 'session state',
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): number {
    if (this.offset + n > this.bytes.length) throw new CodecError(`truncated ${this.what}`);
    const at = this.offset;
    this.offset += n;
    return at;
  }

  /** A copy: decoded secrets are wiped later and must never alias the stored bytes. */
  private take(n: number): Uint8Array {
    const at = this.need(n);
    return this.bytes.slice(at, at + n);
  }

  u8(): number {
    return this.bytes[this.need(1)]!;
  }

  u32(): number {
    return this.view.getUint32(this.need(4), false);
  }

  u64(): bigint {
    return this.view.getBigUint64(this.need(8), false);
  }

  short(): Uint8Array {
    return this.take(this.u8());
  }

  raw(n: number): Uint8Array {
    return this.take(n);
  }

  long(): Uint8Array {
    return this.take(this.u32());
  }

  /** Where the next read starts, for callers that copy a span of the input unparsed. */
  get position(): number {
    return this.offset;
  }

  skip(n: number): void {
    this.need(n);
  }

  end(): void {
    if (this.offset !== this.bytes.length) throw new CodecError(`trailing bytes after ${this.what}`);
  }
}
