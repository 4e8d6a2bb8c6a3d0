/** How many of each key are held: a key counted down to 0 is forgotten, so only keys held take memory. */
export class Tally<K> {
  readonly #counts = new Map<K, number>();

  get(key: K): number {
    return this.#counts.get(key) ?? 0;
  }

  add(key: K): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** Counts `key` down once; it must be held. */
  remove(key: K): void {
    const n = this.#counts.get(key)! - 1;
    if (n === 0) this.#counts.delete(key);
    else this.#counts.set(key, n);
  }
}
