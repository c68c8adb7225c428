// An attach that arrives before the container runs (`docker run` attaches, then starts):
// the client gets its streams at once; they are wired to the helper's attach socket when
// the next start has created the helper and before it lets the process exec.
import { Duplex, PassThrough } from 'node:stream';
import type { AttachStream } from '../runtime/types';

export class PendingAttach {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly stdin?: PassThrough;
  readonly closed: Promise<void>;
  readonly socket: Duplex;
  private finish!: () => void;
  private real?: AttachStream;
  private done = false;

  constructor(readonly wantsStdin: boolean) {
    this.closed = new Promise((resolve) => { this.finish = resolve; });
    if (wantsStdin) this.stdin = new PassThrough();
    // Writes to the raw socket are stdin too; reads come from the decoded streams.
    const stdin = this.stdin;
    this.socket = new Duplex({
      read() { /* output is delivered through stdout/stderr */ },
      write(chunk, _enc, cb) { if (stdin && !stdin.writableEnded) stdin.write(chunk, () => cb()); else cb(); },
      final(cb) { stdin?.end(); cb(); },
    });
  }

  get connected(): boolean { return this.real !== undefined; }

  /** Wires the client to the helper's attach stream. */
  connect(real: AttachStream): void {
    if (this.done) { real.close(); return; }
    this.real = real;
    real.stdout.pipe(this.stdout);
    real.stderr.pipe(this.stderr);
    if (this.stdin && real.stdin) this.stdin.pipe(real.stdin);
    void real.closed.then(() => this.end());
  }

  /** The container did not start (or was removed): the client sees end of stream. */
  end(): void {
    if (this.done) return;
    this.done = true;
    if (!this.real) { this.stdout.end(); this.stderr.end(); }
    this.socket.push(null);
    this.finish();
  }

  close(): void {
    if (this.real) this.real.close();
    this.end();
  }

  asStream(tty: boolean): AttachStream & { tty: boolean } {
    return {
      stdout: this.stdout, stderr: this.stderr, closed: this.closed, socket: this.socket, tty,
      close: () => this.close(),
      ...(this.stdin ? { stdin: this.stdin } : {}),
    };
  }
}
