// Docker's wire shapes for log output: the 8-byte multiplexing header used for non-TTY
// streams, and the `-t` timestamp prefix.
import type { LogEntry } from '../types';
import { formatTimeNanos, parseTimeNanos } from './common';

/** [stream, 0, 0, 0, size uint32 BE] + payload. 0 stdin, 1 stdout, 2 stderr, 3 system error. */
export function encodeFrame(stream: 0 | 1 | 2 | 3, payload: Buffer): Buffer {
  if (payload.length > 0xffffffff) throw new RangeError('frame payload too large');
  const out = Buffer.allocUnsafe(8 + payload.length);
  out[0] = stream;
  out[1] = 0; out[2] = 0; out[3] = 0;
  out.writeUInt32BE(payload.length, 4);
  payload.copy(out, 8);
  return out;
}

/**
 * The bytes `docker logs` prints for one entry. With timestamps Docker prefixes the
 * time in fixed-width RFC3339Nano (9 digits, UTC) and a space; other writers' times
 * (trimmed zeros, offsets) are normalised to that.
 */
export function formatLogLine(entry: LogEntry, timestamps: boolean): Buffer {
  if (!timestamps) return entry.line;
  const ns = parseTimeNanos(entry.time);
  const prefix = (ns === undefined ? entry.time : formatTimeNanos(ns)) + ' ';
  return Buffer.concat([Buffer.from(prefix), entry.line]);
}

/**
 * One HTTP chunk for GET /containers/{id}/logs: raw for a TTY container, else one
 * frame. LuCI parses each chunk as exactly one frame, so write one of these per chunk.
 */
export function logChunk(entry: LogEntry, opts: { timestamps: boolean; tty: boolean }): Buffer {
  const payload = formatLogLine(entry, opts.timestamps);
  return opts.tty ? payload : encodeFrame(entry.stream === 'stderr' ? 2 : 1, payload);
}
