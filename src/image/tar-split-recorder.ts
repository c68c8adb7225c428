// Records a layer tar's layout while it is applied, so the exact tar can be rebuilt later
// from the unpacked files (src/minimal-graph/tar-split.ts) and the blob dropped.
//
// tar-stream hands out parsed headers only, never their bytes, and a tar header cannot
// be re-encoded byte for byte from its parsed fields (checksum spacing, octal padding,
// vendor fields). So this is a small parser of its own over the same uncompressed byte
// stream, following tar-stream's framing rules exactly (what counts as a header, which
// size applies, directories carry no payload) so both agree on where entries start.
//
// Everything is copied verbatim except the payload of a regular file that the applier
// writes to diff/<cleaned name>: that is recorded as (path, size). Whatever this
// recorder gets wrong can only make the rebuilt tar differ, which the verification
// against the diff_id catches before any blob is removed.
import type { TarSplitSink } from '../minimal-graph';

const BLOCK = 512;

type MetaType = 'gnu-long-path' | 'gnu-long-link-path' | 'pax-header' | 'pax-global-header';

/** Where the applier writes a regular file entry's bytes (root-relative), or undefined when it does not. */
export type FilePathOf = (entryName: string) => string | undefined;

type Phase =
  | { kind: 'header' }
  /** Long-name or PAX payload: gathered, recorded raw, and decoded for the next entry. */
  | { kind: 'meta'; type: MetaType; left: number; parts: Buffer[]; padding: number }
  /** An entry's payload: skipped (file reference) or copied (anything else). */
  | { kind: 'data'; left: number; copy: boolean; padding: number }
  | { kind: 'padding'; left: number }
  /** Unparseable from here on: copy the rest (the applier has failed or will). */
  | { kind: 'rest' };

export class TarSplitRecorder {
  private phase: Phase = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private gnuLongPath: string | undefined;
  private pax: Record<string, string> | undefined;
  private paxGlobal: Record<string, string> | undefined;

  constructor(private readonly sink: TarSplitSink, private readonly filePathOf: FilePathOf) {}

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const phase = this.phase;
      switch (phase.kind) {
        case 'rest':
          this.sink.raw(chunk.subarray(at));
          return;
        case 'header': {
          const need = BLOCK - this.pending.length;
          const take = Math.min(need, chunk.length - at);
          this.pending = Buffer.concat([this.pending, chunk.subarray(at, at + take)]);
          at += take;
          if (this.pending.length === BLOCK) {
            const block = this.pending;
            this.pending = Buffer.alloc(0);
            this.sink.raw(block);
            this.onHeader(block);
          }
          break;
        }
        case 'meta': {
          const take = Math.min(phase.left, chunk.length - at);
          const part = chunk.subarray(at, at + take);
          this.sink.raw(part);
          phase.parts.push(Buffer.from(part));
          phase.left -= take;
          at += take;
          if (phase.left === 0) {
            this.onMeta(phase.type, Buffer.concat(phase.parts));
            this.phase = phase.padding > 0 ? { kind: 'padding', left: phase.padding } : { kind: 'header' };
          }
          break;
        }
        case 'data': {
          const take = Math.min(phase.left, chunk.length - at);
          if (phase.copy) this.sink.raw(chunk.subarray(at, at + take));
          phase.left -= take;
          at += take;
          if (phase.left === 0) this.phase = phase.padding > 0 ? { kind: 'padding', left: phase.padding } : { kind: 'header' };
          break;
        }
        case 'padding': {
          const take = Math.min(phase.left, chunk.length - at);
          this.sink.raw(chunk.subarray(at, at + take));
          phase.left -= take;
          at += take;
          if (phase.left === 0) this.phase = { kind: 'header' };
          break;
        }
      }
    }
  }

  /** Call at the end of the stream: a partial block there is still part of the tar. */
  end(): void {
    if (this.pending.length > 0) this.sink.raw(this.pending);
    this.pending = Buffer.alloc(0);
  }

  private onHeader(block: Buffer): void {
    const header = decodeHeader(block);
    if (header === 'zero') return; // end-of-archive blocks (tar-stream reads on past them too)
    if (header === undefined) { this.phase = { kind: 'rest' }; return; }
    const { typeflag } = header;
    const metaType = META_TYPES[typeflag];
    if (metaType) {
      if (header.size > 0) this.phase = { kind: 'meta', type: metaType, left: header.size, parts: [], padding: overflow(header.size) };
      else this.onMeta(metaType, Buffer.alloc(0));
      return;
    }

    // The same overrides tar-stream applies, in the same order.
    let name = header.name;
    let size = header.size;
    if (this.gnuLongPath !== undefined) name = this.gnuLongPath;
    if (this.pax) {
      if (this.pax.path) name = this.pax.path;
      if (this.pax.size) size = Number.parseInt(this.pax.size, 10);
    }
    this.gnuLongPath = undefined;
    this.pax = undefined;

    if (!(size >= 0)) { this.phase = { kind: 'rest' }; return; }
    if (size === 0 || typeflag === DIRECTORY) return; // tar-stream reads no payload for these
    const isFile = typeflag === REGULAR || typeflag === CONTIGUOUS;
    const path = isFile ? this.filePathOf(name) : undefined;
    if (path !== undefined) this.sink.file(path, size);
    this.phase = { kind: 'data', left: size, copy: path === undefined, padding: overflow(size) };
  }

  private onMeta(type: MetaType, payload: Buffer): void {
    switch (type) {
      case 'gnu-long-path': this.gnuLongPath = cString(payload); break;
      case 'gnu-long-link-path': break; // link names do not decide where payloads go
      case 'pax-global-header': this.paxGlobal = decodePax(payload); break;
      case 'pax-header': this.pax = { ...(this.paxGlobal ?? {}), ...decodePax(payload) }; break;
    }
  }
}

// tar-stream's type numbers: the type byte minus '0' ('\0' counts as 0).
const REGULAR = 0;
const DIRECTORY = 5;
const CONTIGUOUS = 7;
const META_TYPES: Record<number, MetaType> = {
  28: 'gnu-long-path', 30: 'gnu-long-path', 27: 'gnu-long-link-path', 72: 'pax-header', 55: 'pax-global-header',
};

const overflow = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

interface RawHeader { name: string; size: number; typeflag: number }

/** 'zero' for an all-zero (null) block, undefined when the checksum is wrong, as tar-stream's decode. */
function decodeHeader(block: Buffer): RawHeader | 'zero' | undefined {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  if (sum === 8 * 32) return 'zero';
  if (sum !== decodeNumber(block, 148, 8)) return undefined;
  let typeflag = block[156] === 0 ? 0 : block[156]! - 0x30;
  let name = cString(block.subarray(0, 100));
  const magic = block.toString('latin1', 257, 263);
  if (magic === 'ustar\0' && block[345]) name = `${cString(block.subarray(345, 500))}/${name}`;
  if (typeflag === 0 && name.endsWith('/')) typeflag = DIRECTORY;
  const size = decodeNumber(block, 124, 12);
  return { name, size: size ?? -1, typeflag };
}

/** Octal with optional leading spaces/NULs, or base-256 when the top bit is set (tar-stream's decodeOct). */
function decodeNumber(block: Buffer, offset: number, length: number): number | undefined {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80 && field[0] !== 0xff) return undefined;
    const positive = field[0] === 0x80;
    let sum = 0;
    for (let i = 1; i < field.length; i++) sum = sum * 256 + (positive ? field[i]! : 0xff - field[i]!);
    return positive ? sum : -sum;
  }
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  let end = field.indexOf(0x20, start);
  if (end < 0) end = field.length;
  while (start < end && field[start] === 0) start++;
  if (end === start) return 0;
  return Number.parseInt(field.toString('latin1', start, end), 8);
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.toString('utf8', 0, nul < 0 ? buf.length : nul);
}

/** tar-stream's decodePax: "<len> key=value\n" records, UTF-8, stopping at the first bad one. */
function decodePax(buf: Buffer): Record<string, string> {
  const result: Record<string, string> = {};
  let rest = buf;
  while (rest.length) {
    let i = 0;
    while (i < rest.length && rest[i] !== 0x20) i++;
    const len = Number.parseInt(rest.toString('utf8', 0, i), 10);
    if (!len) return result;
    const record = rest.toString('utf8', i + 1, len - 1);
    const eq = record.indexOf('=');
    if (eq === -1) return result;
    result[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(len);
  }
  return result;
}
