/**
 * Connections due to be closed at a time of their own (a token's `exp`, `--max-connection-age`),
 * kept in one-second buckets and fired by one timer: no timer per connection, and nothing at all
 * for connections without a deadline. Tokens' `exp` is in whole seconds, so a second is fine enough.
 */
export class Deadlines<T> {
  /** Second (ms / 1000, rounded up) -> the items due then. */
  readonly #buckets = new Map<number, Set<T>>();
  /** Each item's second, to take it out again when it closes first. */
  readonly #due = new Map<T, number>();
  /** The last second fired: an item due at or before it goes into the next. */
  #fired: number;

  constructor(now: number) {
    this.#fired = Math.ceil(now / 1000);
  }

  get size(): number {
    return this.#due.size;
  }

  /** Fires `item` at `at` (ms since the epoch), or at the next tick when that has passed. */
  add(item: T, at: number): void {
    this.delete(item);
    const second = Math.max(Math.ceil(at / 1000), this.#fired + 1);
    let bucket = this.#buckets.get(second);
    if (bucket === undefined) this.#buckets.set(second, (bucket = new Set()));
    bucket.add(item);
    this.#due.set(item, second);
  }

  delete(item: T): void {
    const second = this.#due.get(item);
    if (second === undefined) return;
    this.#due.delete(item);
    // (a bucket being fired is out of the map already)
    const bucket = this.#buckets.get(second);
    if (bucket === undefined) return;
    bucket.delete(item);
    if (bucket.size === 0) this.#buckets.delete(second);
  }

  /** Takes out and hands to `fire` every item due by `now`, in the order they fall due. */
  fire(now: number, fire: (item: T) => void): void {
    const until = Math.floor(now / 1000);
    if (until <= this.#fired) return;
    // a timer held up (a blocked loop, a suspended machine) has missed seconds: walk them, or the
    // buckets when there are fewer of those
    const seconds = until - this.#fired <= this.#buckets.size ? range(this.#fired + 1, until) : [...this.#buckets.keys()].filter((s) => s <= until).sort((a, b) => a - b);
    this.#fired = until;
    for (const s of seconds) {
      const bucket = this.#buckets.get(s);
      if (bucket === undefined) continue;
      this.#buckets.delete(s);
      for (const item of bucket) {
        // taken out (or moved) by an earlier item's fire
        if (this.#due.get(item) !== s) continue;
        this.#due.delete(item);
        fire(item);
      }
    }
  }
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let s = from; s <= to; s++) out.push(s);
  return out;
}
