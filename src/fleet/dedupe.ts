// At-most-once execution per request id, across restarts. An id is appended (and
// fsynced) to a small log under the data root before its command runs; a redelivery
// (QoS 1 after a crash, or a retry) finds it and does not run again. The log is an
// append-only file because routers write to flash: one short write per command, and
// a rewrite only when it grows to twice the bound.
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../util/atomic';

export class RecentRequestIds {
  private readonly order: string[] = [];
  private readonly known = new Set<string>();
  private linesInFile = 0;
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly file: string, private readonly bound: number) {}

  static async open(file: string, bound = 2000): Promise<RecentRequestIds> {
    const ids = new RecentRequestIds(file, bound);
    await fsp.mkdir(dirname(file), { recursive: true, mode: 0o700 });
    let text = '';
    try { text = await fsp.readFile(file, 'utf8'); } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; }
    // A torn last line (power cut mid-append) is just dropped.
    const lines = text.split('\n').filter((l) => /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/.test(l));
    for (const id of lines) ids.remember(id);
    ids.linesInFile = lines.length;
    return ids;
  }

  has(id: string): boolean { return this.known.has(id); }

  private remember(id: string): void {
    if (this.known.has(id)) return;
    this.known.add(id);
    this.order.push(id);
    while (this.order.length > this.bound) this.known.delete(this.order.shift()!);
  }

  /** Records the id durably. Resolves false when it was already recorded (a duplicate). */
  async claim(id: string): Promise<boolean> {
    if (this.known.has(id)) return false;
    this.remember(id);
    const write = this.writing.then(() => this.append(id));
    this.writing = write.catch(() => {});
    await write;
    return true;
  }

  private async append(id: string): Promise<void> {
    if (this.linesInFile + 1 > this.bound * 2) {
      await writeFileAtomic(this.file, this.order.join('\n') + '\n', 0o600);
      this.linesInFile = this.order.length;
      return;
    }
    const fh = await fsp.open(this.file, 'a', 0o600);
    try {
      await fh.write(id + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.linesInFile++;
  }
}
