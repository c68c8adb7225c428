// In-process locks. One daemon owns the data root (ELOCKED guards that), so
// coordinating the async tasks inside this process is all the graph needs.

/** Runs tasks one at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    // The next task waits for this one whether it succeeds or fails.
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** One Mutex per key (a digest), created on demand and dropped when idle. */
export class KeyedMutex {
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let entry = this.locks.get(key);
    if (!entry) { entry = { mutex: new Mutex(), users: 0 }; this.locks.set(key, entry); }
    entry.users++;
    try {
      return await entry.mutex.run(task);
    } finally {
      if (--entry.users === 0) this.locks.delete(key);
    }
  }
}

/**
 * Many writers (pulls committing blobs and layers) may run together; gc and repair
 * need the store to hold still. A waiting exclusive task blocks new shared ones so a
 * busy pull queue cannot starve gc. Do not nest: a shared task that waits for another
 * shared task deadlocks once an exclusive task is queued.
 */
export class SharedExclusiveLock {
  private sharedActive = 0;
  private exclusiveActive = false;
  private readonly queue: Array<{ exclusive: boolean; wake: () => void }> = [];

  shared<T>(task: () => Promise<T>): Promise<T> {
    return this.acquire(false, task);
  }

  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.acquire(true, task);
  }

  private async acquire<T>(exclusive: boolean, task: () => Promise<T>): Promise<T> {
    if (!this.canStart(exclusive) || this.queue.length > 0) {
      await new Promise<void>((wake) => this.queue.push({ exclusive, wake }));
    } else {
      this.take(exclusive);
    }
    try {
      return await task();
    } finally {
      if (exclusive) this.exclusiveActive = false; else this.sharedActive--;
      this.drain();
    }
  }

  private canStart(exclusive: boolean): boolean {
    return exclusive ? !this.exclusiveActive && this.sharedActive === 0 : !this.exclusiveActive;
  }

  private take(exclusive: boolean): void {
    if (exclusive) this.exclusiveActive = true; else this.sharedActive++;
  }

  private drain(): void {
    while (this.queue.length > 0 && this.canStart(this.queue[0]!.exclusive)) {
      const next = this.queue.shift()!;
      this.take(next.exclusive);
      next.wake();
      if (next.exclusive) break;
    }
  }
}
