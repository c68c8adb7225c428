// Builds tar archives for tests with tar-stream's pack(), plus the few things pack() cannot
// write: PAX records with binary values, and entries with arbitrary type flags.
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

export interface TarEntrySpec extends tar.Header {
  body: string | Buffer;
}

export type EntryInput = Partial<TarEntrySpec> & {
  name: string;
  /** PAX records written raw, before this entry (values kept byte-for-byte). */
  rawPax?: Record<string, string | Buffer>;
  /** Overwrites the entry's type flag byte, to fake types pack() does not know. */
  typeFlag?: string;
};

const BLOCK = 512;
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** A complete tar (with trailer) holding `entries` in order. */
export async function buildTar(entries: EntryInput[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const spec of entries) {
    if (spec.rawPax) parts.push(paxBlock(spec.rawPax));
    const { body, rawPax: _rawPax, typeFlag, ...header } = spec;
    let single = await packOne({ mtime: new Date(1_600_000_000_000), ...header }, body);
    single = single.subarray(0, single.length - END_OF_ARCHIVE.length); // drop pack's trailer
    if (typeFlag !== undefined) single = retype(single, typeFlag);
    parts.push(single);
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

async function packOne(header: tar.Header | (Partial<tar.Header> & { name: string }), body?: string | Buffer): Promise<Buffer> {
  const pack = tar.pack();
  if (body !== undefined) pack.entry(header, body);
  else pack.entry(header);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function writeChecksum(header: Buffer): void {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(octal(sum, 7) + ' ', 148, 'ascii');
}

/** A PAX extended header ('x') and its padded records. */
export function paxBlock(records: Record<string, string | Buffer>): Buffer {
  const encoded = Object.entries(records).map(([key, value]) => {
    const payload = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
    // The length prefix counts itself: grow until stable.
    let length = payload.length + 1;
    while (String(length).length + payload.length !== length) length = String(length).length + payload.length;
    return Buffer.concat([Buffer.from(String(length)), payload]);
  });
  const data = Buffer.concat(encoded);
  const header = Buffer.alloc(BLOCK);
  header.write('PaxHeader', 0, 'ascii');
  header.write(octal(0o644, 8), 100, 'ascii');
  header.write(octal(0, 8), 108, 'ascii');
  header.write(octal(0, 8), 116, 'ascii');
  header.write(octal(data.length, 12), 124, 'ascii');
  header.write(octal(0, 12), 136, 'ascii');
  header.write('x', 156, 'ascii');
  header.write('ustar\u000000', 257, 'ascii');
  writeChecksum(header);
  const padding = Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK);
  return Buffer.concat([header, data, padding]);
}

function retype(entry: Buffer, typeFlag: string): Buffer {
  const copy = Buffer.from(entry);
  copy.write(typeFlag, 156, 'ascii');
  writeChecksum(copy.subarray(0, BLOCK));
  return copy;
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** zstd via the command line tool (fzstd only decompresses). */
export function zstd(data: Buffer, args: string[] = []): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });
}
