/** Ids per chunk before a chunk is split in two. */
const CHUNK = 512;

/** The first index in `a` (sorted) whose element is greater than `id`, or, with `orEqual`, not less. */
function bound(a: readonly string[], id: string, orEqual: boolean): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < id || (!orEqual && a[mid] === id)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A set of ids kept in order, in sorted chunks of at most 2 × 512: adding, removing and finding where
 * a page starts cost two binary searches and a short splice, never a pass over every id. (Sorting the
 * ids for each `GET /connections` held the event loop for 220-270 ms at 100k connections.)
 */
export class SortedIds {
  /** Non-empty sorted chunks, each one's ids all below the next one's. */
  readonly #chunks: string[][] = [];
  #size = 0;

  /** The set of `sorted` (ascending, no repeats), in one pass. */
  static of(sorted: readonly string[]): SortedIds {
    const set = new SortedIds();
    for (let i = 0; i < sorted.length; i += CHUNK) set.#chunks.push(sorted.slice(i, i + CHUNK));
    set.#size = sorted.length;
    return set;
  }

  get size(): number {
    return this.#size;
  }

  /** The chunk that holds `id` or would: the first whose last id is not below it (the last chunk past them all). */
  #chunkOf(id: string): number {
    let lo = 0;
    let hi = this.#chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = this.#chunks[mid]!;
      if (c[c.length - 1]! < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `id`; false when it was there already. */
  add(id: string): boolean {
    if (this.#chunks.length === 0) {
      this.#chunks.push([id]);
      this.#size = 1;
      return true;
    }
    const k = Math.min(this.#chunkOf(id), this.#chunks.length - 1);
    const chunk = this.#chunks[k]!;
    const i = bound(chunk, id, true);
    if (chunk[i] === id) return false;
    chunk.splice(i, 0, id);
    this.#size++;
    if (chunk.length > 2 * CHUNK) this.#chunks.splice(k + 1, 0, chunk.splice(CHUNK));
    return true;
  }

  /** Removes `id`; false when it was not there. */
  delete(id: string): boolean {
    const k = this.#chunkOf(id);
    const chunk = this.#chunks[k];
    if (chunk === undefined) return false;
    const i = bound(chunk, id, true);
    if (chunk[i] !== id) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(k, 1);
    return true;
  }

  /** The ids in order, from the first greater than `after` (from the first of all without it). */
  *after(after?: string): Generator<string, void, undefined> {
    let k = after === undefined ? 0 : this.#chunkOf(after);
    let i = after === undefined ? 0 : bound(this.#chunks[k] ?? [], after, false);
    for (; k < this.#chunks.length; k++, i = 0) {
      const chunk = this.#chunks[k]!;
      for (; i < chunk.length; i++) yield chunk[i]!;
    }
  }
}
