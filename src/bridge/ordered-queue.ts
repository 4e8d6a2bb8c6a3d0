/**
 * Work items keyed by connection: at most one in flight per key (so one connection's events reach the
 * application in order), at most `concurrency` in flight overall, at most `limit` waiting overall.
 * Keys take turns, so one busy connection cannot starve the others. `run` calls `done` once when the
 * item is finished (a callback, not a promise: this runs for every frame the bridge carries).
 */
export class OrderedQueue<T> {
  readonly #waiting = new Map<string, T[]>();
  /** Keys with waiting items and nothing in flight, in turn order. */
  readonly #ready: string[] = [];
  readonly #active = new Set<string>();
  #pending = 0;
  readonly #concurrency: number;
  readonly #limit: number;
  readonly #run: (key: string, item: T, done: () => void) => void;
  #idleWaiters: Array<() => void> = [];
  /** Inside #pump's loop: an item finished synchronously is picked up by the loop, not by recursion. */
  #pumping = false;

  constructor(concurrency: number, limit: number, run: (key: string, item: T, done: () => void) => void) {
    this.#concurrency = concurrency;
    this.#limit = limit;
    this.#run = run;
  }

  /** Items waiting (not yet started). */
  get pending(): number {
    return this.#pending;
  }

  /** Items in flight. */
  get active(): number {
    return this.#active.size;
  }

  /** Queues an item; false when the queue is full (the caller gives the item up visibly). */
  push(key: string, item: T): boolean {
    if (this.#pending >= this.#limit) return false;
    let list = this.#waiting.get(key);
    if (!list) {
      list = [];
      this.#waiting.set(key, list);
      if (!this.#active.has(key)) this.#ready.push(key);
    }
    list.push(item);
    this.#pending++;
    this.#pump();
    return true;
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      this.#fill();
    } finally {
      this.#pumping = false;
    }
    if (this.#pending === 0 && this.#active.size === 0) for (const w of this.#idleWaiters.splice(0)) w();
  }

  #fill(): void {
    while (this.#active.size < this.#concurrency && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      const list = this.#waiting.get(key)!;
      const item = list.shift()!;
      if (list.length === 0) this.#waiting.delete(key);
      this.#pending--;
      this.#active.add(key);
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        this.#active.delete(key);
        if (this.#waiting.has(key)) this.#ready.push(key);
        this.#pump();
      };
      try {
        this.#run(key, item, done);
      } catch {
        done();
      }
    }
  }

  /** Resolves when nothing is waiting or in flight. */
  idle(): Promise<void> {
    if (this.#pending === 0 && this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}
